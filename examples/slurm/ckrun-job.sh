#!/bin/sh
# A Slurm batch job that survives its time limit and preemption: submit it
# once, and every run after a requeue continues where the last one stopped.
#
#   sbatch examples/slurm/ckrun-job.sh PROGRAM [ARGS...]
#
# How it works:
#  - `ckrun --resume` starts PROGRAM when CKPT holds no checkpoint yet and
#    continues it from the newest complete one otherwise (the same checks
#    and fallback as `ckrun restart`; it refuses, never starts afresh, when
#    the checkpoints there cannot be used).
#  - --signal=B:USR1@120 makes Slurm send SIGUSR1 to this shell 120 s before
#    the time limit (up to a minute earlier); the trap hands it to ckrun,
#    whose --checkpoint-on USR1 takes a checkpoint and ends the program
#    (ckrun then exits 75), and the job puts itself back in the queue.
#  - Preemption (PreemptMode=REQUEUE) and `scontrol requeue` send SIGTERM
#    to every process of the job at once: ckrun's --checkpoint-on TERM takes
#    a checkpoint while the shim holds the signal back from the program (up
#    to 2 s), so the requeued job continues from that instant. With
#    SlurmctldParameters=preempt_send_user_signal and a GraceTime, a preempted job
#    gets the SIGUSR1 first, like at its time limit. --interval is the
#    safety net for what gives no warning (a node that fails, SIGKILL).
#  - --open-mode=append: a requeued job must not truncate its output file;
#    ckrun puts it back as it was at the checkpoint, so it reads as one
#    uninterrupted run.
#SBATCH --job-name=ckrun-job
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@120
#SBATCH --time=24:00:00

CKRUN=${CKRUN:-ckrun}
CKPT=${CKPT:-$PWD/ckpt.${SLURM_JOB_ID:-local}}
INTERVAL=${CKRUN_INTERVAL:-900}

"$CKRUN" --resume --dir "$CKPT" --checkpoint-on USR1,TERM --interval "$INTERVAL" --keep 2 -- "$@" &
ckrun=$!
trap 'kill -USR1 $ckrun' USR1
trap 'kill -TERM $ckrun' TERM
# wait returns early (above 128) when a trapped signal arrives: wait again
while :; do
	wait $ckrun
	status=$?
	kill -0 $ckrun 2>/dev/null || break
done
if [ "$status" -eq 75 ] && [ -n "$SLURM_JOB_ID" ]; then
	echo "ckrun-job: checkpointed and stopped; requeueing job $SLURM_JOB_ID" >&2
	scontrol requeue "$SLURM_JOB_ID"
fi
exit $status
