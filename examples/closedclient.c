/*
 * closedclient: a Unix listener with a connection not yet accepted whose
 * client sent a line and closed its end (CRIU's zdtm sk-unix-listen04).
 * The program accepts it only at its last step and checks that the line is
 * there and then EOF: a checkpoint before that must fail (what a closed
 * client sent cannot be read before accept), never lose the line.
 *
 *   closedclient DIR STEPS     prints "step K", then "done"; ERROR and exit 1
 */
#include "common.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int steps = atoi(argv[2]);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s/l", argv[1]);
	unlink(a.sun_path);
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) ||
	    connect(c, (struct sockaddr *)&a, sizeof a) || write(c, "packet\n", 7) != 7)
		die("setting up");
	close(c);
	for (int s = 1; s <= steps; s++) {
		say("step %d", s);
		pace_ms(30);
	}
	int s = accept(l, NULL, NULL);
	char buf[64];
	ssize_t n = s < 0 ? -1 : read(s, buf, sizeof buf);
	if (n != 7 || memcmp(buf, "packet\n", 7) || read(s, buf, sizeof buf) != 0) {
		say("ERROR the connection's line is lost (read %zd)", n);
		return 1;
	}
	say("done");
	return 0;
}
