/*
 * offsets: one open file description shared by a parent and its child.
 *
 * OUTFILE is opened once, before fork, without O_APPEND: the two processes
 * write through the same descriptor and the shared file offset is the only
 * thing that keeps their lines apart. They take turns, synchronized by a
 * pair of pipes: "parent i", then "child i". Each step the parent prints
 * the offset (the same in both processes); at the end it reads the file
 * back and checks that every line is there once, alternating.
 *
 *   offsets OUTFILE [--rounds N]
 */
#include "common.h"
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PACE_MS 25

static void put(int fd, const char *who, int i)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "%s %d\n", who, i);
	ssize_t w;
	do
		w = write(fd, buf, (size_t)n);
	while (w < 0 && errno == EINTR);
	if (w != n) {
		say("error: %s: write: %s", who, w < 0 ? strerror(errno) : "short");
		exit(2);
	}
}

static int take(int fd)
{
	char c;
	ssize_t r;
	do
		r = read(fd, &c, 1);
	while (r < 0 && errno == EINTR);
	return r == 1;
}

static void give(int fd)
{
	char c = 't';
	ssize_t w;
	do
		w = write(fd, &c, 1);
	while (w < 0 && errno == EINTR);
	if (w != 1)
		exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: offsets OUTFILE [--rounds N]\n");
		return 2;
	}
	int rounds = 150;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
	say("offsets: start rounds=%d", rounds);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open");
	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent))
		die("pipe");
	pid_t c = fork();
	if (c < 0)
		die("fork");
	if (c == 0) {
		close(to_child[1]);
		close(to_parent[0]);
		for (int i = 1; take(to_child[0]); i++) {
			put(fd, "child", i);
			give(to_parent[1]);
		}
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	for (int i = 1; i <= rounds; i++) {
		put(fd, "parent", i);
		give(to_child[1]);
		if (!take(to_parent[0])) {
			say("error: the child is gone at round %d", i);
			return 2;
		}
		say("step %d offset=%lld", i, (long long)lseek(fd, 0, SEEK_CUR));
		pace_ms(PACE_MS);
	}
	close(to_child[1]);
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		say("error: the child did not exit 0");

	FILE *f = fopen(argv[1], "r");
	if (!f)
		die("fopen");
	char line[64], want[64];
	int n = 0, bad = 0;
	while (fgets(line, sizeof line, f)) {
		snprintf(want, sizeof want, "%s %d\n", n % 2 ? "child" : "parent", n / 2 + 1);
		if (strcmp(line, want) && !bad) {
			say("error: line %d is \"%.*s\", expected \"%.*s\"", n + 1, (int)strcspn(line, "\n"), line,
			    (int)strcspn(want, "\n"), want);
			bad = 1;
		}
		n++;
	}
	fclose(f);
	say("offsets: done rounds=%d lines=%d alternating=%s offset=%lld", rounds, n, bad || n != 2 * rounds ? "no" : "ok",
	    (long long)lseek(fd, 0, SEEK_CUR));
	return 0;
}
