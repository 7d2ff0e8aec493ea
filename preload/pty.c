/* Terminals: pseudo-terminals the program made (/dev/ptmx and the slave
 * /dev/pts/N it opened), and the settings of the terminal the session
 * runs in.
 *
 * A pseudo-terminal of the program is made again at restart with the same
 * number when that number is free: its settings (termios, window size,
 * lock, packet mode), its session and foreground group (the processes of
 * the family take it as their controlling terminal again, restore.c), and
 * the bytes its slave side wrote that the master side had not read yet.
 * Those bytes are read from the master at checkpoint time (a terminal
 * cannot be peeked at) and written back through the slave at once, with
 * output processing off, so a checkpoint that resumes changes nothing.
 * Input the master wrote that the slave side has not read is saved too
 * when it can be put back exactly: a line not yet ended in canonical mode
 * (made readable by turning canonical mode off for a moment) and
 * everything in non-canonical mode. It is read from the slave and written
 * again into the master at once under settings that keep it as it is (no
 * echo, no translation, no special character: put_back_input). Complete
 * lines not yet read in canonical mode fail the checkpoint (their ends
 * could not be put back with a partial line after them).
 *
 * The terminal of the session (ckrun's stdio, or a slave of a terminal
 * that is not the family's, which is the controlling terminal) is the
 * terminal `ckrun restart` runs in: its termios are put on that one, and
 * a process in its foreground group gets SIGWINCH so that a full-screen
 * program redraws. docs/design.md, "Terminals". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h> /* flag and c_cc index values only: the struct is the kernel's, below */
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "fdkind.h"
#include "sys.h"

/* The kernel's struct termios (TCGETS), not glibc's. */
struct ck_ktermios {
	uint32_t iflag, oflag, cflag, lflag;
	uint8_t line;
	uint8_t cc[19];
};
_Static_assert(sizeof(struct ck_ktermios) == 36, "the kernel's struct termios");

#define KT_OPOST 0000001u
#define PTY_MAJOR_FIRST 136 /* UNIX98 slaves: majors 136..143 */
#define PTY_MAJOR_LAST 143
#define MAX_IN_FLIGHT (1UL << 20)
#define MAX_INPUT 4096 /* the line discipline's buffer (N_TTY_BUF_SIZE) */
#define ONE_PASS_MAX 1024 /* bytes one write puts in one kernel buffer (below TTY_BUFFER_PAGE) */

static unsigned dev_major(uint64_t d)
{
	return (unsigned)((d >> 8) & 0xfff);
}

static unsigned dev_minor(uint64_t d)
{
	return (unsigned)((d & 0xff) | ((d >> 12) & 0xfff00));
}

static int is_master(const struct ck_fd *f)
{
	return (f->st.mode & S_IFMT) == S_IFCHR && dev_major(f->st.rdev) == 5 && dev_minor(f->st.rdev) == 2;
}

static int is_slave(const struct ck_fd *f)
{
	unsigned maj = dev_major(f->st.rdev);
	return (f->st.mode & S_IFMT) == S_IFCHR && maj >= PTY_MAJOR_FIRST && maj <= PTY_MAJOR_LAST;
}

static int pty_detect(const struct ck_fd *f)
{
	return is_master(f) || is_slave(f);
}

/* ---- checkpoint (in the signal handler: raw code only) ---- */

/* A terminal's settings, and its session and foreground group when it is
 * this process's controlling terminal (or fd is a master: they are its
 * slave's). Nothing when fd is not a terminal. */
CK_HIDDEN void ck_tty_save(struct cb_enc *e, int fd)
{
	struct ck_ktermios tio;
	uint16_t ws[4] = {0, 0, 0, 0};
	int sid = 0, fg = 0;
	if (ck_ioctl(fd, TCGETS, &tio) < 0)
		return;
	ck_ioctl(fd, TIOCGWINSZ, ws);
	cb_text(e, "tty");
	cb_map_open(e);
	cb_text(e, "termios");
	cb_array(e, 6);
	cb_uint(e, tio.iflag);
	cb_uint(e, tio.oflag);
	cb_uint(e, tio.cflag);
	cb_uint(e, tio.lflag);
	cb_uint(e, tio.line);
	cb_bytes(e, tio.cc, sizeof tio.cc);
	cb_text(e, "winsize");
	cb_array(e, 4);
	for (int i = 0; i < 4; i++)
		cb_uint(e, ws[i]);
	if (ck_ioctl(fd, TIOCGSID, &sid) == 0 && sid > 0)
		cb_kv_uint(e, "sid", (uint64_t)sid);
	if (ck_ioctl(fd, TIOCGPGRP, &fg) == 0 && fg > 0)
		cb_kv_uint(e, "fg", (uint64_t)fg);
	cb_close(e);
}

static void fail_pty(struct ck_writer *w, long err, int fd, const char *detail)
{
	struct ck_str m;
	ck_writer_fail(w, err, "a pseudo-terminal cannot be saved");
	ck_str_init(&m, w->err_detail, sizeof w->err_detail);
	ck_str_add(&m, "descriptor ");
	ck_str_dec(&m, fd);
	ck_str_add(&m, " (/dev/ptmx): ");
	ck_str_add(&m, detail);
}

/* A slave whose master side every process has closed: the terminal is
 * hung up and its /dev/pts node gone (the link says "(deleted)"), as the
 * terminal of an ssh login that ended is for a job left running in it.
 * Its descriptions read end of file and fail every write and ioctl with
 * EIO, whatever terminal it was: a restart makes a new one and hangs it up
 * the same way (its settings are not saved: they cannot be read). */
static int is_hung_up(const struct ck_fd *f)
{
	return ck_ends_with(f->link, " (deleted)");
}

/* Reads everything the master can read now, with the description made
 * non-blocking for as long (the family is stopped: nobody sees it). */
static long drain_master(int fd, long flags, char *buf, size_t cap)
{
	long got = 0, k = 0;
	if (!(flags & O_NONBLOCK))
		ck_fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	while ((size_t)got < cap && (k = ck_read(fd, buf + got, cap - (size_t)got)) > 0)
		got += k;
	if (!(flags & O_NONBLOCK))
		ck_fcntl(fd, F_SETFL, flags);
	return k < 0 && k != -EAGAIN && k != -EIO ? k : got;
}

/* In packet mode every read gives one packet: a TIOCPKT_DATA (0) byte,
 * then data; the data is gathered at the start of buf. A status packet
 * (a nonzero first byte) cannot be put back: -EPROTO (the caller looked
 * for one first, so none comes while the family is stopped). */
static long drain_master_packets(int fd, long flags, char *buf, size_t cap)
{
	long got = 0, k = 0;
	if (!(flags & O_NONBLOCK))
		ck_fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	while ((size_t)got < cap && (k = ck_read(fd, buf + got, cap - (size_t)got)) > 0) {
		if (buf[got] != TIOCPKT_DATA) {
			k = -EPROTO;
			break;
		}
		for (long i = 1; i < k; i++)
			buf[got + i - 1] = buf[got + i];
		got += k - 1;
	}
	if (!(flags & O_NONBLOCK))
		ck_fcntl(fd, F_SETFL, flags);
	return k < 0 && k != -EAGAIN && k != -EIO ? k : got;
}

/* In packet mode a status the master has not read yet (a flush, a stop or
 * start of output) shows as POLLPRI. */
static int packet_status_pending(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLPRI};
	return CK_SYS3(SYS_poll, &p, 1, 0) > 0 && (p.revents & POLLPRI);
}

/* Bytes written to a slave reach its master's buffer through the
 * kernel's flush work, later: poll() on the master waits for that work,
 * so FIONREAD and a non-blocking read find them at once, as before. */
static void settle_output(int master)
{
	struct pollfd p = {.fd = master, .events = POLLIN};
	CK_SYS3(SYS_poll, &p, 1, 0);
}

/* The slave side's output the master had not read: read, saved, and
 * written back through the slave with output processing off (it was
 * processed when the program wrote it). In packet mode the data is read
 * packet by packet and written back the same way, so the master reads it
 * in packets again; a status not yet read fails the checkpoint. */
static void save_output_in_flight(struct ck_writer *w, const struct ck_fd *f, int packet)
{
	int queued = 0;
	if (packet && packet_status_pending(f->fd)) {
		fail_pty(w, -EOPNOTSUPP, f->fd, "in packet mode, a status (flush, stop or start of output) its master has not "
					      "read; ckrun cannot save it; the program runs on, try again when it is read");
		return;
	}
	if (ck_ioctl(f->fd, FIONREAD, &queued) < 0 || queued <= 0)
		return;
	long buf = ck_mmap(0, MAX_IN_FLIGHT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf < 0 && buf > -4096) {
		ck_writer_fail(w, buf, "cannot map a buffer for a pseudo-terminal's bytes in flight");
		return;
	}
	char *data = (char *)buf;
	long n = packet ? drain_master_packets(f->fd, f->flags, data, MAX_IN_FLIGHT)
			: drain_master(f->fd, f->flags, data, MAX_IN_FLIGHT);
	int slave = n > 0 ? (int)ck_ioctl(f->fd, TIOCGPTPEER, (void *)(long)(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK)) : -1;
	if (n > 0 && slave >= 0) {
		struct ck_ktermios tio, raw;
		ck_ioctl(slave, TCGETS, &tio);
		raw = tio;
		raw.oflag &= ~KT_OPOST;
		ck_ioctl(slave, TCSETS, &raw);
		for (long put = 0; put < n;) {
			long k = ck_write(slave, data + put, (size_t)(n - put));
			if (k <= 0)
				break;
			put += k;
		}
		ck_ioctl(slave, TCSETS, &tio);
		ck_close(slave);
		settle_output(f->fd);
		ck_image_put_data(w, data, (size_t)n);
	} else if (n != 0) {
		fail_pty(w, n < 0 ? n : slave, f->fd, "cannot read the bytes its slave wrote");
	}
	ck_munmap(data, MAX_IN_FLIGHT);
}

/* ---- input the master wrote that the slave side has not read ---- */

/* The line discipline takes what the master wrote before anything is
 * looked at: poll() on the slave runs the kernel's pending input work
 * when nothing is readable yet (and does nothing else). */
static void settle_input(int slave)
{
	struct pollfd p = {.fd = slave, .events = POLLIN};
	CK_SYS3(SYS_poll, &p, 1, 0);
}

/* The slave's unread input as saved: its bytes, and where each complete
 * line of canonical mode ends in them (ends[i] = end << 1 | LINE_EOF when
 * an end-of-file character ended it: a read gives such a line without
 * it). What follows the last line is a line not yet ended, or, in
 * non-canonical mode, everything. */
#define LINE_EOF 1u
struct saved_input {
	const char *data;
	long n;
	const uint32_t *ends;
	long nends;
};

static long lines_length(const struct saved_input *in)
{
	return in->nends ? (long)(in->ends[in->nends - 1] >> 1) : 0;
}

static int is_canonical(const struct ck_ktermios *tio)
{
	return (tio->lflag & ICANON) && !(tio->lflag & EXTPROC);
}

/* Whether c, the last byte a canonical read gave, is what ended the line
 * (rather than an end-of-file character after it). A quoted line end
 * right before an end-of-file character reads the same, and is taken for
 * the line's end: the program reads the same bytes either way. */
static int is_line_end(const struct ck_ktermios *tio, unsigned char c)
{
	return c && (c == '\n' || c == tio->cc[VEOL] || ((tio->lflag & IEXTEN) && c == tio->cc[VEOL2]));
}

/* What the settings of a put back make special: the line ends the saved
 * lines have, an end-of-file character for lines an EOF ended, the
 * quoting character, flow control unless it is off for the moment. */
struct put_mode {
	const struct ck_ktermios *tio;
	unsigned char eol, eol2, eof, quote;
	int noflow;
};

static int is_flow_char(const struct put_mode *m, unsigned char c)
{
	return !m->noflow && (m->tio->iflag & IXON) && c && (c == m->tio->cc[VSTART] || c == m->tio->cc[VSTOP]);
}

/* Whether byte c would be taken as a command rather than kept: a line
 * end, flow control. */
static int needs_quote(const struct put_mode *m, unsigned char c)
{
	if (is_flow_char(m, c))
		return 1;
	return is_canonical(m->tio) && c && (c == '\n' || c == m->eol || c == m->eol2 || c == m->eof);
}

/* Settings under which bytes written to the master enter the slave's
 * buffer as they are: no echo, no signal, no input translation, no
 * special character but the quoting one and the line ends of m.
 * Canonical mode and flow control stay as they were: changing the first
 * would end the pending line, the second would show in packet mode (it is
 * turned off only for bytes that would be taken for it and cannot be
 * quoted: m->noflow). */
static struct ck_ktermios transparent(const struct put_mode *m)
{
	static const int special[] = {VINTR, VQUIT, VERASE, VKILL, VEOF, VEOL, VEOL2, VSUSP, VWERASE, VREPRINT, VDISCARD};
	struct ck_ktermios t = *m->tio;
	t.iflag &= ~(uint32_t)(ISTRIP | INLCR | IGNCR | ICRNL | IUCLC | IXANY | PARMRK);
	t.lflag &= ~(uint32_t)(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOPRT | ECHOKE | ISIG | IEXTEN);
	for (size_t i = 0; i < sizeof special / sizeof *special; i++)
		t.cc[special[i]] = 0;
	t.cc[VLNEXT] = m->quote;
	t.cc[VEOL] = m->eol;
	t.cc[VEOL2] = m->eol2;
	t.cc[VEOF] = m->eof;
	if (m->quote || m->eol2)
		t.lflag |= IEXTEN;
	if (m->noflow)
		t.iflag &= ~(uint32_t)IXON;
	return t;
}

/* The settings that put back in: the saved terminal's own line ends (a
 * line's last byte ends it again), an unused end-of-file character when a
 * line needs one, flow control off when a byte that must stay unquoted
 * (a line end; any byte in non-canonical mode, where nothing can be
 * quoted) would be taken for it, and a quoting character when a byte of
 * a line needs one. */
static struct put_mode plan_put_back(const struct ck_ktermios *tio, const struct saved_input *in)
{
	struct put_mode m = {.tio = tio};
	int canonical = is_canonical(tio), any_eof = 0, need_quote = 0;
	if (canonical) {
		m.eol = tio->cc[VEOL];
		m.eol2 = (tio->lflag & IEXTEN) ? tio->cc[VEOL2] : 0;
	}
	for (long i = 0, start = 0; i < in->nends; start = in->ends[i] >> 1, i++) {
		long end = in->ends[i] >> 1;
		any_eof |= (in->ends[i] & LINE_EOF) != 0;
		if (!(in->ends[i] & LINE_EOF) && end > start)
			m.noflow |= is_flow_char(&m, (unsigned char)in->data[end - 1]);
	}
	if (!canonical)
		for (long i = 0; i < in->n && !m.noflow; i++)
			m.noflow = is_flow_char(&m, (unsigned char)in->data[i]);
	for (unsigned c = 1; any_eof && !m.eof && c < 256; c++)
		if (!needs_quote(&m, (unsigned char)c))
			m.eof = (unsigned char)c;
	for (long i = 0; canonical && i < in->n; i++)
		need_quote |= needs_quote(&m, (unsigned char)in->data[i]);
	for (unsigned c = 1; need_quote && !m.quote && c < 256; c++)
		if (!needs_quote(&m, (unsigned char)c))
			m.quote = (unsigned char)c;
	return m;
}

static long quote_into(const struct put_mode *m, const char *in, long n, char *out)
{
	long k = 0;
	for (long i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (m->quote && (c == m->quote || needs_quote(m, c)))
			out[k++] = (char)m->quote;
		out[k++] = (char)c;
	}
	return k;
}

/* What to write into the master under m: every line's bytes quoted, then
 * its end as it is (its last byte, or m's end-of-file character), then
 * the rest quoted. out: 3 * in->n + in->nends bytes. Its length; *last:
 * where the last line's end is in it (0 without lines). */
static long encode_input(const struct put_mode *m, const struct saved_input *in, char *out, long *last)
{
	long k = 0, start = 0;
	*last = 0;
	for (long i = 0; i < in->nends; i++) {
		long end = in->ends[i] >> 1;
		int eof = (in->ends[i] & LINE_EOF) != 0;
		k += quote_into(m, in->data + start, end - start - !eof, out + k);
		*last = k;
		out[k++] = eof ? (char)m->eof : in->data[end - 1];
		start = end;
	}
	return k + quote_into(m, in->data + start, in->n - start, out + k);
}

static long write_all(int fd, const char *buf, long len)
{
	long r = 0;
	for (long put = 0; r >= 0 && put < len; put += r)
		if ((r = ck_write(fd, buf + put, (size_t)(len - put))) == 0)
			r = -EIO;
	return r < 0 ? r : 0;
}

/* Whether the line discipline took all that was written: every byte in
 * non-canonical mode, every line in canonical mode (counted without
 * end-of-file characters, as FIONREAD counts them). A line not yet ended
 * is never readable: when nothing else is, one poll() took it
 * (settle_input); after lines, it came with the last one's end
 * (put_back_input). */
static int input_taken(int slave, const struct ck_ktermios *tio, const struct saved_input *in)
{
	int queued = 0;
	settle_input(slave);
	if (ck_ioctl(slave, FIONREAD, &queued) < 0)
		return 0;
	if (!is_canonical(tio))
		return queued >= in->n;
	struct pollfd p = {.fd = slave, .events = POLLIN};
	return queued >= lines_length(in) && (!in->nends || CK_SYS3(SYS_poll, &p, 1, 0) > 0);
}

/* Writes the saved input into the master so that the slave's buffer holds
 * it again, as it was (its lines as lines), under the settings tio, which
 * the slave has now and has again after. The slave's buffer is empty.
 * scratch: 3 * in->n + in->nends bytes. 0, or a negative errno. */
static long put_back_input(int master, int slave, const struct ck_ktermios *tio, const struct saved_input *in,
			   char *scratch)
{
	struct put_mode m = plan_put_back(tio, in);
	long last;
	long len = encode_input(&m, in, scratch, &last);
	struct ck_ktermios t = transparent(&m);
	long r = ck_ioctl(slave, TCSETS, &t);
	/* A line not yet ended after lines shows nowhere: it is written with
	 * the last line's end, in one write small enough for one kernel
	 * buffer, which the line discipline takes in one pass, so it is in
	 * once that line is readable (docs/design.md, "Terminals"). */
	int one_pass = !in->nends || len - last <= ONE_PASS_MAX;
	if (r >= 0 && last)
		r = write_all(master, scratch, last);
	if (r >= 0)
		r = write_all(master, scratch + last, len - last);
	int taken = 0;
	for (int tries = 0; r >= 0 && !(taken = input_taken(slave, tio, in)) && tries < 2000; tries++) {
		struct timespec ms = {0, 1000000};
		CK_SYS2(SYS_nanosleep, &ms, 0);
	}
	if (r >= 0 && !taken)
		r = -ETIMEDOUT;
	if (r >= 0 && !one_pass) {
		struct timespec margin = {0, 20000000};
		CK_SYS2(SYS_nanosleep, &margin, 0);
		r = -E2BIG;
	}
	long back = ck_ioctl(slave, TCSETS, (void *)tio);
	return r < 0 ? r : back;
}

/* Complete lines of a canonical slave, one read each: a read in canonical
 * mode ends with a line's end, and gives a line an end-of-file character
 * ended without it (an empty one as 0). Until EAGAIN: a read that finds
 * nothing runs the kernel's pending input work first. Their length, or a
 * negative errno. */
static long take_lines(int slave, const struct ck_ktermios *tio, char *buf, uint32_t *ends, long *nends)
{
	long got = 0;
	*nends = 0;
	while (got < MAX_INPUT && *nends < MAX_INPUT) {
		long k = ck_read(slave, buf + got, (size_t)(MAX_INPUT - got));
		if (k < 0)
			return k == -EAGAIN ? got : k;
		int eof = k == 0 || !is_line_end(tio, (unsigned char)buf[got + k - 1]);
		got += k;
		ends[(*nends)++] = (uint32_t)got << 1 | (eof ? LINE_EOF : 0);
	}
	return got;
}

/* Reads what the slave's buffer holds: with canonical mode off for the
 * moment (the pending line becomes readable), no minimum, no timeout. Its
 * length, or a negative errno when the settings cannot be changed. */
static long take_input(int slave, const struct ck_ktermios *tio, char *buf, long cap)
{
	struct ck_ktermios rd = *tio;
	long got = 0, k = 0;
	rd.lflag &= ~(uint32_t)ICANON;
	rd.cc[VMIN] = 0;
	rd.cc[VTIME] = 0;
	long r = ck_ioctl(slave, TCSETS, &rd);
	if (r < 0)
		return r;
	while (got < cap && (k = ck_read(slave, buf + got, (size_t)(cap - got))) > 0)
		got += k;
	ck_ioctl(slave, TCSETS, (void *)tio);
	return got;
}

static void save_input_record(struct ck_writer *w, const struct saved_input *in)
{
	uint32_t crc = 0;
	uint64_t off = ck_image_put_bytes(w, in->data, (size_t)in->n, &crc);
	cb_text(&w->meta, "input");
	cb_array(&w->meta, 3);
	cb_uint(&w->meta, off);
	cb_uint(&w->meta, (uint64_t)in->n);
	cb_uint(&w->meta, crc);
	if (!in->nends)
		return;
	cb_text(&w->meta, "lines");
	cb_array(&w->meta, (uint64_t)in->nends);
	for (long i = 0; i < in->nends; i++)
		cb_uint(&w->meta, in->ends[i]);
}

/* Input the master wrote that the slave side has not read, saved as
 * "input" (and "lines") and put back at once. Anything under EXTPROC
 * fails the checkpoint: the program runs on. */
static void save_input_in_flight(struct ck_writer *w, const struct ck_fd *f)
{
	int slave = (int)ck_ioctl(f->fd, TIOCGPTPEER, (void *)(long)(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
	struct ck_ktermios tio;
	int queued = 0;
	if (slave < 0)
		return;
	if (ck_ioctl(slave, TCGETS, &tio) < 0)
		goto out;
	settle_input(slave);
	ck_ioctl(slave, FIONREAD, &queued);
	if ((tio.lflag & EXTPROC) && queued > 0) {
		fail_pty(w, -EAGAIN, f->fd, "input written to it is not yet read by its slave side, whose line editing is "
					      "done elsewhere (EXTPROC); ckrun cannot save it; the program runs on, try "
					      "again when it is read");
		goto out;
	}
	if ((!queued && !is_canonical(&tio)) || (tio.lflag & EXTPROC))
		goto out;
	/* bytes, what to write back (encode_input), line ends */
	const size_t size = 8 * MAX_INPUT;
	long map = ck_mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map < 0 && map > -4096) {
		ck_writer_fail(w, map, "cannot map a buffer for a pseudo-terminal's unread input");
		goto out;
	}
	char *buf = (char *)map;
	uint32_t *ends = (uint32_t *)(buf + 4 * MAX_INPUT);
	long nends = 0;
	long lines = is_canonical(&tio) ? take_lines(slave, &tio, buf, ends, &nends) : 0;
	long rest = lines >= 0 ? take_input(slave, &tio, buf + lines, MAX_INPUT - lines) : 0;
	struct saved_input in = {buf, lines + rest, ends, nends};
	long r = lines >= 0 && rest >= 0 && in.n + nends > 0 ? put_back_input(f->fd, slave, &tio, &in, buf + MAX_INPUT) : 0;
	if (lines < 0)
		fail_pty(w, lines, f->fd, "cannot read the lines its slave side has not read");
	else if (rest < 0)
		fail_pty(w, rest, f->fd, "cannot change its slave side's settings to read the input it has not read");
	else if (r == -E2BIG)
		fail_pty(w, r, f->fd, "its slave side has complete lines it has not read, and after them an unfinished "
				      "line too long for ckrun to tell when the terminal has taken it back; the program "
				      "runs on, try again when the lines are read");
	else if (r < 0)
		fail_pty(w, r, f->fd, "cannot put back the input its slave side has not read (it may be lost)");
	else if (in.n + nends > 0)
		save_input_record(w, &in);
	ck_munmap(buf, size);
out:
	ck_close(slave);
}

/* Reading and putting back a terminal's bytes in flight is not atomic:
 * processes of the family that share its master save it one after the
 * other (each has a description of its slave of its own, locked with
 * flock; closing it unlocks). *fd: that description, -1 when the slave
 * cannot be opened (a locked terminal: nothing is in flight). 0, or a
 * negative errno. */
static long lock_terminal(int master, int *fd)
{
	long r = 0;
	*fd = (int)ck_ioctl(master, TIOCGPTPEER, (void *)(long)(O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
	if (*fd < 0) {
		*fd = -1;
		return 0;
	}
	for (int tries = 0; tries < 3000; tries++) {
		struct timespec ms = {0, 1000000};
		if ((r = CK_SYS2(SYS_flock, *fd, LOCK_EX | LOCK_NB)) != -EWOULDBLOCK)
			break;
		CK_SYS2(SYS_nanosleep, &ms, 0);
	}
	if (r < 0) {
		ck_close(*fd);
		*fd = -1;
	}
	return r;
}

/* The slave's node /dev/pts/N (its owner and mode): 1 when read. */
static int slave_node(unsigned index, struct ck_stat *st)
{
	char path[32];
	struct ck_str p;
	ck_str_init(&p, path, sizeof path);
	ck_str_add(&p, "/dev/pts/");
	ck_str_dec(&p, index);
	return CK_SYS4(SYS_newfstatat, -100 /* AT_FDCWD */, path, st, 0) == 0;
}

static void pty_save(struct ck_writer *w, const struct ck_fdtab *t, const struct ck_fd *f)
{
	(void)t;
	struct cb_enc *e = &w->meta;
	unsigned index = 0;
	int locked = 0, packet = 0, node = 0;
	struct ck_stat slave_st;
	if (is_master(f)) {
		if (ck_ioctl(f->fd, TIOCGPTN, &index) < 0) {
			fail_pty(w, -EOPNOTSUPP, f->fd, "it is not a pseudo-terminal master ckrun knows");
			return;
		}
		ck_ioctl(f->fd, TIOCGPTLCK, &locked);
		ck_ioctl(f->fd, TIOCGPKT, &packet);
		node = slave_node(index, &slave_st);
	} else {
		index = (dev_major(f->st.rdev) - PTY_MAJOR_FIRST) * 256 + dev_minor(f->st.rdev);
	}
	cb_text(e, "pty");
	cb_map_open(e);
	cb_kv_text(e, "end", is_master(f) ? "master" : "slave");
	cb_kv_uint(e, "index", index);
	if (!is_master(f) && is_hung_up(f)) {
		cb_kv_bool(e, "hung_up", 1);
		cb_close(e);
		return;
	}
	if (is_master(f)) {
		cb_kv_bool(e, "locked", locked);
		cb_kv_bool(e, "packet", packet);
		if (node) {
			cb_text(e, "owner");
			cb_array(e, 3);
			cb_uint(e, slave_st.uid);
			cb_uint(e, slave_st.gid);
			cb_uint(e, slave_st.mode & 07777);
		}
		int lock;
		long locked_now = lock_terminal(f->fd, &lock);
		if (locked_now < 0)
			fail_pty(w, locked_now, f->fd, "cannot lock its slave side (flock) within 3 s: another process holds a lock "
						 "on it; ckrun cannot save its bytes in flight; try again when it is released");
		else
			save_output_in_flight(w, f, packet);
		if (!w->err)
			save_input_in_flight(w, f);
		if (lock >= 0)
			ck_close(lock);
	}
	ck_tty_save(e, f->fd);
	cb_close(e);
}

/* ---- restore host ---- */

CK_HIDDEN extern const struct ck_fd_kind ck_kind_pty;

/* A terminal's saved settings ("tty"). */
struct tty {
	int has_termios;
	struct ck_ktermios tio;
	uint16_t ws[4];
	int sid, fg; /* 0: unknown (not the saver's controlling terminal) */
};

/* A pseudo-terminal end of the image ("pty"). */
struct pty {
	struct tty tty; /* its terminal's settings, as for the session's stdio */
	int master, locked, packet;
	int hung_up; /* a slave whose terminal was hung up (is_hung_up) */
	uint64_t index;
	int have_owner;
	uint64_t owner[3]; /* the slave node's uid, gid, mode */
	uint64_t data_off, data_len; /* slave output the master had not read */
	uint32_t data_crc;
	uint64_t input_off, input_len; /* input the slave had not read */
	uint32_t input_crc;
	uint32_t *ends; /* its complete lines (struct saved_input) */
	long nends;
};

static int parse_termios(struct cb_dec *d, struct ck_ktermios *tio)
{
	int64_t m;
	uint64_t v[5];
	const uint8_t *cc;
	size_t ncc;
	if (!cbd_array(d, &m) || m != 6)
		return 0;
	for (int i = 0; i < 5; i++)
		if (!cbd_uint_max(d, i == 4 ? 255 : UINT32_MAX, &v[i]))
			return 0;
	if (!cbd_bytes(d, &cc, &ncc) || ncc != sizeof tio->cc)
		return 0;
	tio->iflag = (uint32_t)v[0];
	tio->oflag = (uint32_t)v[1];
	tio->cflag = (uint32_t)v[2];
	tio->lflag = (uint32_t)v[3];
	tio->line = (uint8_t)v[4];
	memcpy(tio->cc, cc, ncc);
	return 1;
}

static int parse_tty(struct cb_dec *d, struct tty *t)
{
	int64_t left, m;
	const char *k;
	size_t kl;
	uint64_t v;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		if (cbd_key_is(k, kl, "termios")) {
			if (!parse_termios(d, &t->tio))
				return 0;
			t->has_termios = 1;
		} else if (cbd_key_is(k, kl, "winsize")) {
			if (!cbd_array(d, &m) || m != 4)
				return 0;
			for (int i = 0; i < 4; i++) {
				if (!cbd_uint_max(d, UINT16_MAX, &v))
					return 0;
				t->ws[i] = (uint16_t)v;
			}
		} else if (cbd_key_is(k, kl, "sid") || cbd_key_is(k, kl, "fg")) {
			if (!cbd_uint_max(d, INT32_MAX, &v))
				return 0;
			*(cbd_key_is(k, kl, "sid") ? &t->sid : &t->fg) = (int)v;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	return !d->error && t->has_termios;
}

/* [offset, length, crc32c] of bytes in the image */
static int parse_chunk(struct cb_dec *d, uint64_t max, uint64_t *off, uint64_t *len, uint32_t *crc)
{
	int64_t m;
	uint64_t c;
	if (!cbd_array(d, &m) || m != 3 || !cbd_uint(d, off) || !cbd_uint_max(d, max, len) ||
	    !cbd_uint_max(d, UINT32_MAX, &c))
		return 0;
	*crc = (uint32_t)c;
	return 1;
}

/* "lines": where each complete line ends in "input", in order */
static int parse_line_ends(struct cb_dec *d, struct pty *p)
{
	int64_t m;
	uint64_t v, last = 0;
	if (!cbd_array(d, &m) || m < 1 || m > MAX_INPUT)
		return 0;
	p->ends = calloc((size_t)m, sizeof *p->ends);
	for (p->nends = 0; p->nends < m; p->nends++) {
		/* in order; a line its last byte ended has that byte */
		if (!cbd_uint_max(d, (MAX_INPUT << 1) | LINE_EOF, &v) || (v >> 1) < last ||
		    (!(v & LINE_EOF) && (v >> 1) == last))
			return 0;
		last = v >> 1;
		p->ends[p->nends] = (uint32_t)v;
	}
	return 1;
}

static int pty_parse(struct cb_dec *d, struct ck_img_file *f)
{
	int64_t left;
	const char *k;
	size_t kl;
	struct pty *p = calloc(1, sizeof *p);
	int have_end = 0;
	f->priv = p;
	if (!cbd_map(d, &left))
		return 0;
	while (cbd_next_key(d, &left, &k, &kl)) {
		const char *s;
		size_t sl;
		if (cbd_key_is(k, kl, "end")) {
			if (!cbd_text(d, &s, &sl))
				return 0;
			p->master = sl == 6 && !memcmp(s, "master", 6);
			have_end = p->master || (sl == 5 && !memcmp(s, "slave", 5));
		} else if (cbd_key_is(k, kl, "index")) {
			if (!cbd_uint_max(d, 1 << 20, &p->index))
				return 0;
		} else if (cbd_key_is(k, kl, "locked")) {
			if (!cbd_bool(d, &p->locked))
				return 0;
		} else if (cbd_key_is(k, kl, "hung_up")) {
			if (!cbd_bool(d, &p->hung_up))
				return 0;
		} else if (cbd_key_is(k, kl, "packet")) {
			if (!cbd_bool(d, &p->packet))
				return 0;
		} else if (cbd_key_is(k, kl, "tty")) {
			if (!parse_tty(d, &p->tty))
				return 0;
		} else if (cbd_key_is(k, kl, "data")) {
			if (!parse_chunk(d, MAX_IN_FLIGHT, &p->data_off, &p->data_len, &p->data_crc))
				return 0;
		} else if (cbd_key_is(k, kl, "input")) {
			if (!parse_chunk(d, MAX_INPUT, &p->input_off, &p->input_len, &p->input_crc))
				return 0;
		} else if (cbd_key_is(k, kl, "lines")) {
			if (!parse_line_ends(d, p))
				return 0;
		} else if (cbd_key_is(k, kl, "owner")) {
			int64_t m;
			if (!cbd_array(d, &m) || m != 3 || !cbd_uint_max(d, 0xffffffffu, &p->owner[0]) ||
			    !cbd_uint_max(d, 0xffffffffu, &p->owner[1]) || !cbd_uint_max(d, 07777, &p->owner[2]))
				return 0;
			p->have_owner = 1;
		} else if (!cbd_skip(d)) {
			return 0;
		}
	}
	if (p->nends && ((p->ends[p->nends - 1] >> 1) > p->input_len || !is_canonical(&p->tty.tio)))
		return 0; /* lines beyond the saved bytes, or of a terminal without lines */
	return !d->error && have_end;
}

/* The pseudo-terminals this restore made, by the number they had. */
struct made_pty {
	uint64_t index;   /* at checkpoint time */
	unsigned now;     /* the number the kernel gave */
	int master;       /* its descriptor, object ("pty", index, 0) */
	int sid, fg;      /* its session and foreground group, 0 if none */
};
static struct made_pty *made;
static size_t nmade;

/* The process group the restore started in (ckrun restart's), before any
 * process of the family made its own: create_shared runs first. */
static pid_t restart_pgrp;

static struct made_pty *made_find(uint64_t index)
{
	for (size_t i = 0; i < nmade; i++)
		if (made[i].index == index)
			return &made[i];
	return 0;
}

static int ktcsets(int fd, const struct ck_ktermios *tio)
{
	return ioctl(fd, TCSETS, tio);
}

/* A new master, with the number `want` if the kernel can give it: it gives
 * the lowest free one, so the numbers below are held until it comes. */
static int open_master(uint64_t want, unsigned *got)
{
	int held[256], nheld = 0, fd = -1;
	for (;;) {
		fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			ck_refuse("cannot create pseudo-terminal %llu again (/dev/ptmx: %s)", (unsigned long long)want,
				  strerror(errno));
		if (ioctl(fd, TIOCGPTN, got) < 0)
			ck_refuse("/dev/ptmx gave no pseudo-terminal number: %s", strerror(errno));
		if (*got >= want || nheld == 256)
			break;
		held[nheld++] = fd;
	}
	while (nheld)
		close(held[--nheld]);
	if (*got != want)
		ck_verbose("pseudo-terminal %llu is taken here: the program's is /dev/pts/%u now", (unsigned long long)want,
			   *got);
	return fd;
}

static int moved_above(int fd, int base_fd)
{
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, base_fd);
	if (moved < 0)
		ck_refuse("cannot place a pseudo-terminal's descriptor: %s", strerror(errno));
	close(fd);
	return moved;
}

/* len bytes of the image at off, checked; what names them in a refusal */
static char *read_chunk(struct ck_image *img, const struct pty *p, uint64_t off, uint64_t len, uint32_t crc,
			const char *what)
{
	char *buf = malloc(len ? len : 1);
	if (ck_pread_all(img->fd, buf, len, off) < 0)
		ck_refuse("image %s is truncated: cannot read the %s of pseudo-terminal %llu", img->path, what,
			  (unsigned long long)p->index);
	if (ck_crc32c(0, buf, len) != crc)
		ck_refuse("image %s is corrupted: the %s of pseudo-terminal %llu fail their checksum", img->path, what,
			  (unsigned long long)p->index);
	return buf;
}

static void put_back_output(struct ck_image *img, const struct pty *p, int slave)
{
	char *buf = read_chunk(img, p, p->data_off, p->data_len, p->data_crc, "bytes in flight");
	struct ck_ktermios raw = p->tty.tio;
	raw.oflag &= ~KT_OPOST;
	ktcsets(slave, &raw);
	if (write(slave, buf, p->data_len) != (ssize_t)p->data_len)
		ck_refuse("cannot put back the bytes in flight of pseudo-terminal %llu: %s", (unsigned long long)p->index,
			  strerror(errno));
	free(buf);
}

/* The master and its settings; its slave side is opened (and closed) here
 * only to set them. */
/* The slave node's owner, group and mode, as the program left them (it
 * may have given the terminal to another user, as login programs do). */
static void give_node_owner(const struct pty *p, int slave, unsigned now)
{
	struct stat st;
	if (!p->have_owner || fstat(slave, &st) != 0)
		return;
	/* EINVAL: an ID this restart's user namespace does not map (an ordinary
	 * user's restart: the tty group), which reads as the overflow ID here
	 * as every unmapped ID does (README) */
	if ((st.st_uid != p->owner[0] || st.st_gid != p->owner[1]) && fchown(slave, (uid_t)p->owner[0], (gid_t)p->owner[1]) != 0 &&
	    errno != EINVAL)
		ck_refuse("cannot give pseudo-terminal %u its owner %llu and group %llu again: %s; restart as root (or as "
			  "that user)", now, (unsigned long long)p->owner[0], (unsigned long long)p->owner[1], strerror(errno));
	if ((st.st_mode & 07777) != p->owner[2] && fchmod(slave, (mode_t)p->owner[2]) != 0)
		ck_refuse("cannot give pseudo-terminal %u its mode %04llo again: %s", now, (unsigned long long)p->owner[2],
			  strerror(errno));
}

static void make_pty(struct ck_image *img, const struct pty *p, struct ck_objects *objs, int base_fd)
{
	struct made_pty *m;
	made = realloc(made, (nmade + 1) * sizeof *made);
	m = &made[nmade++];
	memset(m, 0, sizeof *m);
	m->index = p->index;
	int master = open_master(p->index, &m->now);
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		ck_refuse("cannot unlock pseudo-terminal %u: %s", m->now, strerror(errno));
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (slave < 0)
		ck_refuse("cannot open the slave of pseudo-terminal %u: %s", m->now, strerror(errno));
	if (p->data_len) {
		put_back_output(img, p, slave);
		struct pollfd settle = {.fd = master, .events = POLLIN};
		poll(&settle, 1, 0); /* the bytes reach the master's buffer now (settle_output) */
	}
	if (ktcsets(slave, &p->tty.tio) < 0 || ioctl(slave, TIOCSWINSZ, p->tty.ws) < 0)
		ck_refuse("cannot give pseudo-terminal %u its settings: %s", m->now, strerror(errno));
	give_node_owner(p, slave, m->now);
	if (p->input_len || p->nends) {
		char *bytes = read_chunk(img, p, p->input_off, p->input_len, p->input_crc, "unread input");
		struct saved_input in = {bytes, (long)p->input_len, p->ends, p->nends};
		char *scratch = malloc(3 * p->input_len + (size_t)p->nends + 1);
		long r = put_back_input(master, slave, &p->tty.tio, &in, scratch);
		if (r < 0)
			ck_refuse("cannot put back the input pseudo-terminal %llu had not read (%llu bytes): %s",
				  (unsigned long long)p->index, (unsigned long long)p->input_len, strerror((int)-r));
		free(scratch);
		free(bytes);
	}
	close(slave);
	int on = 1;
	if (p->packet && ioctl(master, TIOCPKT, &on) < 0)
		ck_refuse("cannot put pseudo-terminal %u in packet mode: %s", m->now, strerror(errno));
	if (p->locked && ioctl(master, TIOCSPTLCK, &on) < 0)
		ck_refuse("cannot lock pseudo-terminal %u: %s", m->now, strerror(errno));
	m->master = moved_above(master, base_fd);
	ck_objects_add(objs, "pty", p->index, 0, m->master);
}

/* Its session and foreground group, from whichever end saved them (a
 * master, or the slave of a process whose controlling terminal it was). */
static void note_session(struct made_pty *m, const struct pty *p)
{
	if (p->tty.sid && !m->sid)
		m->sid = p->tty.sid;
	if (p->tty.fg && !m->fg)
		m->fg = p->tty.fg;
}

/* Every pseudo-terminal whose master the family has, once, before any
 * process is forked: object ("pty", number, 0), its master. */
static void pty_create_shared(struct ck_image **imgs, size_t n, struct ck_objects *objs, int base_fd)
{
	restart_pgrp = getpgrp();
	for (int masters = 1; masters >= 0; masters--)
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < imgs[i]->nfiles; j++) {
				struct ck_img_file *f = &imgs[i]->files[j];
				const struct pty *p = f->priv;
				if (f->ops != &ck_kind_pty || !p || f->same_as >= 0 || p->master != masters || p->hung_up)
					continue;
				struct made_pty *m = made_find(p->index);
				if (!m && masters)
					make_pty(imgs[i], p, objs, base_fd), m = &made[nmade - 1];
				if (m)
					note_session(m, p);
			}
}

/* A slave of a terminal the family did not make: only the controlling
 * terminal can be given back (as the one ckrun restart runs in). */
static int open_outside_slave(struct ck_img_file *f, const struct pty *p)
{
	if (!p->tty.sid)
		ck_refuse("descriptor %d refers to %s, a terminal the program did not create that was not its controlling "
			  "terminal; ckrun cannot give it back; restart from an image taken without it",
			  f->fd, f->path);
	int fd = open("/dev/tty", (f->flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		ck_refuse("descriptor %d was the program's controlling terminal %s, and ckrun restart runs without one "
			  "(/dev/tty: %s); restart it in a terminal",
			  f->fd, f->path, strerror(errno));
	return fd;
}

/* A new terminal, hung up as the saved one was: its master closed with
 * the slave open (the kernel hangs the slave up then, synchronously). */
static int open_hung_up_slave(struct ck_img_file *f)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	int fd = master < 0 || unlockpt(master) != 0
			 ? -1
			 : ioctl(master, TIOCGPTPEER, (f->flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC);
	int err = errno;
	if (master >= 0)
		close(master);
	if (fd < 0)
		ck_refuse("cannot make a hung-up terminal again for descriptor %d (%s): %s", f->fd, f->path, strerror(err));
	return fd;
}

static int pty_open(struct ck_image *img, struct ck_img_file *f, int base_fd, const struct ck_objects *objs)
{
	(void)img, (void)base_fd;
	const struct pty *p = f->priv;
	if (p->hung_up)
		return open_hung_up_slave(f);
	int master = ck_objects_find(objs, "pty", p->index, 0);
	if (master < 0)
		return p->master ? -1 : open_outside_slave(f, p);
	if (p->master) {
		int fd = dup(master);
		if (fd >= 0)
			fcntl(fd, F_SETFL, f->flags & O_NONBLOCK);
		return fd;
	}
	/* a new description of the slave, as open(2) of /dev/pts/N made */
	return ioctl(master, TIOCGPTPEER, (f->flags & (O_ACCMODE | O_NONBLOCK)) | O_NOCTTY);
}

/* ---- the session's terminal: the one ckrun restart runs in ---- */

/* The descriptors on the session's terminal, with their saved settings,
 * until every descriptor is at its number. */
static struct {
	const struct tty *tty;
	int fd;
} session_ttys[8];
static int nsession_ttys;

static void note_session_tty(const struct tty *t, int fd)
{
	if (!t || !t->has_termios || nsession_ttys >= 8)
		return;
	session_ttys[nsession_ttys].tty = t;
	session_ttys[nsession_ttys].fd = fd;
	nsession_ttys++;
}

static void pty_install(struct ck_img_file *f)
{
	const struct pty *p = f->priv;
	if (!p->master && !p->hung_up && !made_find(p->index))
		note_session_tty(&p->tty, f->fd);
}

/* The session's stdio (files.c): its "tty" part, and its settings put on
 * the terminal ckrun restart runs in. */
CK_HIDDEN int ck_tty_parse(struct cb_dec *d, struct ck_img_file *f)
{
	struct tty *t = calloc(1, sizeof *t);
	f->priv = t;
	return parse_tty(d, t);
}

CK_HIDDEN void ck_tty_install(struct ck_img_file *f)
{
	note_session_tty(f->priv, f->fd);
}

/* Whether the process's controlling terminal is a pseudo-terminal of the
 * family (its session is one of theirs), not ckrun restart's. */
static int in_family_terminal(void)
{
	for (size_t i = 0; i < nmade; i++)
		if (made[i].sid == getsid(0))
			return 1;
	return 0;
}

/* A process that was in the foreground group of the session's terminal,
 * restarted in the foreground of a terminal: the terminal gets the
 * program's settings back (its window size stays its own, unless it has
 * none), the program's own group gets the foreground if ckrun restart's
 * group has it (a shell's job that had it), and the process gets SIGWINCH
 * so that a full-screen program redraws on the new terminal. A restart in
 * the background, or without a terminal, changes nothing of the terminal.
 * Signals are blocked until the program runs: no SIGTTOU or SIGTTIN here,
 * and SIGWINCH waits for the program. */
static void pty_installed(struct ck_image *img)
{
	pid_t pgrp = getpgrp();
	for (int i = 0; i < nsession_ttys; i++) {
		const struct tty *t = session_ttys[i].tty;
		int fd = session_ttys[i].fd;
		pid_t fg = tcgetpgrp(fd); /* fails unless it is this process's controlling terminal */
		if (t->fg != img->pgid || fg < 0 || in_family_terminal())
			continue;
		/* In the foreground now? A read of nothing says so in any PID
		 * namespace (where groups outside it read as 0): with SIGTTIN
		 * blocked, a background group's read fails with EIO. */
		char none;
		int foreground = read(fd, &none, 0) == 0;
		if (!foreground && restart_pgrp > 0 && fg == restart_pgrp) {
			if (tcsetpgrp(fd, pgrp) < 0)
				ck_refuse("cannot give the terminal to process group %d again: %s", (int)pgrp, strerror(errno));
			foreground = 1;
		}
		if (!foreground)
			continue;
		if (ktcsets(fd, &t->tio) < 0)
			ck_refuse("cannot put the program's terminal settings on the terminal ckrun restart runs in: %s",
				  strerror(errno));
		uint16_t ws[4];
		if (ioctl(fd, TIOCGWINSZ, ws) == 0 && !ws[0] && !ws[1])
			ioctl(fd, TIOCSWINSZ, t->ws);
		kill(getpid(), SIGWINCH);
		break;
	}
	nsession_ttys = 0;
}

/* ---- processes of the family take their terminals again (restore.c) ---- */

/* p, which leads its session again, takes the family's pseudo-terminal
 * that was its controlling terminal. */
CK_HIDDEN void ck_pty_session_opened(int pid, const struct ck_objects *objs)
{
	for (size_t i = 0; i < nmade; i++) {
		if (made[i].sid != pid)
			continue;
		int master = ck_objects_find(objs, "pty", made[i].index, 0);
		int slave = master < 0 ? -1 : ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
			ck_refuse("process %d cannot take pseudo-terminal %llu as its controlling terminal again: %s", pid,
				  (unsigned long long)made[i].index, strerror(errno));
		close(slave);
	}
}

/* Process group pgid exists again: if it was the foreground group of a
 * family's pseudo-terminal, it is again. The caller is in the terminal's
 * session; SIGTTOU is blocked meanwhile (a background group asks). */
CK_HIDDEN void ck_pty_group_made(int pgid, const struct ck_objects *objs)
{
	sigset_t ttou, old;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &old);
	for (size_t i = 0; i < nmade; i++) {
		if (made[i].fg != pgid || made[i].sid != getsid(0))
			continue;
		int master = ck_objects_find(objs, "pty", made[i].index, 0);
		if (master < 0 || tcsetpgrp(master, pgid) < 0)
			ck_refuse("cannot make process group %d the foreground group of pseudo-terminal %llu again: %s", pgid,
				  (unsigned long long)made[i].index, strerror(errno));
	}
	sigprocmask(SIG_SETMASK, &old, 0);
}

CK_HIDDEN const struct ck_fd_kind ck_kind_pty = {
	.name = "pty",
	.detect = pty_detect,
	.save = pty_save,
	.key = "pty",
	.parse = pty_parse,
	.create_shared = pty_create_shared,
	.open = pty_open,
	.install = pty_install,
	.installed = pty_installed,
};
