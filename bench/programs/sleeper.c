/* sleeper: the trivial C program of the image-size benchmark: says ready,
 * then sleeps 100 ms at a time forever. */
#include <stdio.h>
#include <time.h>

int main(void)
{
	printf("ready\n");
	fflush(stdout);
	struct timespec ts = {0, 100000000};
	for (;;)
		nanosleep(&ts, 0);
}
