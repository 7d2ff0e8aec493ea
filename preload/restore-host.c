/* ckrun-restore: a process that the shim turns into a saved one. */
int ckrun_restore_main(int argc, char **argv);

/* Tells the shim's constructor that this is not a program to join a session. */
__attribute__((visibility("default"))) int ckrun_restore_host = 1;

int main(int argc, char **argv)
{
	return ckrun_restore_main(argc, argv);
}
