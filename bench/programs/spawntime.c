/* spawntime: start-up time of a program: posix_spawn + waitpid, N times.
 *
 *   spawntime N [-e NAME=VALUE]... [-u NAME]... -- PROGRAM ARGS...
 *
 * -e sets and -u removes a variable in the children's environment only.
 * The children's stdout and stderr go to /dev/null.
 * stdout: "run <ns>" per start, then "done". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int same_name(const char *entry, const char *name)
{
	size_t n = strcspn(name, "=");
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: spawntime N [-e NAME=VALUE]... [-u NAME]... -- PROGRAM ARGS...\n");
		return 2;
	}
	long n = atol(argv[1]);
	size_t envc = 0;
	while (environ[envc])
		envc++;
	char **env = calloc(envc + (size_t)argc + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < envc; i++)
		env[k++] = environ[i];
	int a = 2;
	for (; a < argc && strcmp(argv[a], "--") != 0; a++) {
		if ((strcmp(argv[a], "-e") == 0 || strcmp(argv[a], "-u") == 0) && a + 1 < argc) {
			const char *v = argv[++a];
			size_t j = 0;
			for (size_t i = 0; i < k; i++)
				if (!same_name(env[i], v))
					env[j++] = env[i];
			k = j;
			if (argv[a - 1][1] == 'e')
				env[k++] = (char *)v;
		} else {
			fprintf(stderr, "spawntime: bad argument %s\n", argv[a]);
			return 2;
		}
	}
	env[k] = 0;
	if (a + 1 >= argc) {
		fprintf(stderr, "spawntime: no PROGRAM\n");
		return 2;
	}
	char **cmd = argv + a + 1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t pid;
		int err = posix_spawnp(&pid, cmd[0], &fa, 0, cmd, env);
		if (err != 0) {
			fprintf(stderr, "spawntime: %s: %s\n", cmd[0], strerror(err));
			return 1;
		}
		int st;
		if (waitpid(pid, &st, 0) != pid) {
			perror("spawntime: waitpid");
			return 1;
		}
		uint64_t t1 = now_ns();
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "spawntime: %s exited with status 0x%x\n", cmd[0], st);
			return 1;
		}
		printf("run %llu\n", (unsigned long long)(t1 - t0));
	}
	printf("done\n");
	return 0;
}
