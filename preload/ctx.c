/* Resume contexts and the jumps of the restore path, in assembly because
 * they switch stacks or return twice. */
#include "ckrun.h"

/* long ck_ctx_save(struct ck_ctx *c) */
__asm__(
	".text\n"
	".globl ck_ctx_save\n"
	".hidden ck_ctx_save\n"
	".type ck_ctx_save,@function\n"
	"ck_ctx_save:\n"
	"	mov %rbx, 0(%rdi)\n"
	"	mov %rbp, 8(%rdi)\n"
	"	mov %r12, 16(%rdi)\n"
	"	mov %r13, 24(%rdi)\n"
	"	mov %r14, 32(%rdi)\n"
	"	mov %r15, 40(%rdi)\n"
	"	lea 8(%rsp), %rdx\n"
	"	mov %rdx, 48(%rdi)\n"
	"	mov (%rsp), %rdx\n"
	"	mov %rdx, 56(%rdi)\n"
	"	stmxcsr 64(%rdi)\n"
	"	fnstcw 68(%rdi)\n"
	"	xor %eax, %eax\n"
	"	ret\n"
	".size ck_ctx_save, .-ck_ctx_save\n");

/* void ck_ctx_resume(const struct ck_ctx *c, long value) */
__asm__(
	".section ckcore,\"ax\",@progbits\n"
	".globl ck_ctx_resume\n"
	".hidden ck_ctx_resume\n"
	".type ck_ctx_resume,@function\n"
	"ck_ctx_resume:\n"
	"	mov 0(%rdi), %rbx\n"
	"	mov 8(%rdi), %rbp\n"
	"	mov 16(%rdi), %r12\n"
	"	mov 24(%rdi), %r13\n"
	"	mov 32(%rdi), %r14\n"
	"	mov 40(%rdi), %r15\n"
	"	ldmxcsr 64(%rdi)\n"
	"	fldcw 68(%rdi)\n"
	"	mov 48(%rdi), %rsp\n"
	"	mov %rsi, %rax\n"
	"	jmp *56(%rdi)\n"
	".size ck_ctx_resume, .-ck_ctx_resume\n"
	".text\n");

/* void ck_jump_to_core(void *arg, void *stack_top, void (*entry)(void *))
 * Runs in the restore host's own copy of the shim and never returns. */
__asm__(
	".text\n"
	".globl ck_jump_to_core\n"
	".hidden ck_jump_to_core\n"
	".type ck_jump_to_core,@function\n"
	"ck_jump_to_core:\n"
	"	mov %rsi, %rsp\n"
	"	xor %ebp, %ebp\n"
	"	call *%rdx\n"
	"	ud2\n"
	".size ck_jump_to_core, .-ck_jump_to_core\n");

/* long ck_clone3_thread(struct clone_args *args, size_t size,
 *                       void (*fn)(void *), void *arg)
 * In the parent returns the new TID or -errno. The child starts on the
 * stack given in args, calls fn(arg) and must never return. */
__asm__(
	".section ckcore,\"ax\",@progbits\n"
	".globl ck_clone3_thread\n"
	".hidden ck_clone3_thread\n"
	".type ck_clone3_thread,@function\n"
	"ck_clone3_thread:\n"
	"	mov %rdx, %r8\n"       /* survives the syscall in both tasks */
	"	mov %rcx, %r9\n"
	"	mov $435, %eax\n"      /* SYS_clone3 */
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	xor %ebp, %ebp\n"
	"	mov %r9, %rdi\n"
	"	call *%r8\n"
	"	ud2\n"
	"1:	ret\n"
	".size ck_clone3_thread, .-ck_clone3_thread\n"
	".text\n");
