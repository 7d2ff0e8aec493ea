/* `ckrun-restore`: the restore host's command line (restore-host.c's
 * main calls it). It only chooses what runs: the fast start (front.c),
 * a check, an init of a fresh PID namespace, a family or one process
 * (restore.c). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "restore.h"

CK_EXPORT int ckrun_restore_main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "--front"))
		return ck_front_main(argc - 2, argv + 2);
	int init = 0, verify_data = 1, tree = 0, check = 0;
	const char *path = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--init"))
			init = 1;
		else if (!strcmp(argv[i], "--tree"))
			tree = 1;
		else if (!strcmp(argv[i], "--check"))
			check = 1;
		else if (!strcmp(argv[i], "--no-verify-data"))
			verify_data = 0;
		else if (!strcmp(argv[i], "--help")) {
			printf("usage: ckrun-restore [--init] [--no-verify-data] IMAGE\n"
			       "       ckrun-restore [--init] [--no-verify-data] --tree GENERATION_DIR\n"
			       "Turns this process into the one saved in IMAGE, or restores every process of a\n"
			       "generation as their orchestrator. Run by `ckrun restart`.\n"
			       "  --init            be PID 1 of a fresh PID namespace\n"
			       "  --tree            restore the whole family of GENERATION_DIR (manifest.cbor)\n"
			       "  --check           only check IMAGE or GENERATION_DIR as a restore would, exit 0 if it\n"
			       "                    would go ahead (used by ckrun verify)\n"
			       "  --no-verify-data  do not check the saved pages' checksums (ckrun already did)\n");
			return 0;
		} else
			path = argv[i];
	}
	if (!path)
		ck_refuse("no image given (usage: ckrun-restore [--init] [--no-verify-data] IMAGE)");
	if (check)
		ck_check_only(path, verify_data);
	if (init)
		ck_run_init(path, verify_data, tree);
	if (tree)
		ck_restore_tree(path, verify_data, 0);
	ck_restore_image(path, verify_data);
}
