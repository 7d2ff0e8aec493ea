/* Objects the processes of a restore share: made once, before any
 * process is forked (by the orchestrator of a family, or by a single
 * process's restore host), and inherited; each process takes its
 * descriptors from here by identity. What an object is belongs to the
 * kind that made it: a pipe's end, a socket, a shared memory object, an
 * open file description; here it is only a type (the maker's name), an
 * identity in that type and a descriptor. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "restore.h"

CK_HIDDEN void ck_objects_add(struct ck_objects *objs, const char *type, uint64_t id, uint64_t sub, int fd)
{
	if (objs->n == objs->cap) {
		objs->cap = objs->cap ? objs->cap * 2 : 16;
		objs->v = realloc(objs->v, objs->cap * sizeof *objs->v);
		if (!objs->v)
			ck_refuse("out of memory for the objects the restored processes share");
	}
	objs->v[objs->n++] = (struct ck_obj){type, id, sub, fd};
}

CK_HIDDEN int ck_objects_find(const struct ck_objects *objs, const char *type, uint64_t id, uint64_t sub)
{
	for (size_t i = 0; objs && i < objs->n; i++)
		if (objs->v[i].id == id && objs->v[i].sub == sub && objs->v[i].fd >= 0 && !strcmp(objs->v[i].type, type))
			return objs->v[i].fd;
	return -1;
}

CK_HIDDEN void ck_objects_close(struct ck_objects *objs)
{
	for (size_t i = 0; i < objs->n; i++)
		if (objs->v[i].fd >= 0)
			close(objs->v[i].fd);
}
