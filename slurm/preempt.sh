# Preemption and requeueing for the sbatch scripts in this directory (sourced, not run):
#
#   source slurm/preempt.sh
#   run_preemptible srun ... node launcher/start.js ... --resume auto
#
# run_preemptible starts the srun step in the background and waits for it. The batch shell
# traps the signals SLURM sends it:
#
#   SIGUSR1  (#SBATCH --signal=B:USR1@300: 300 s before the time limit; or by hand with
#            `scancel --signal=USR1 --batch JOBID`)
#            is forwarded to srun (`kill -USR1`), which delivers it to every process of the step
#            on every node. The launcher and its workers finish the current step, rank 0 writes
#            a checkpoint to OUT/checkpoints, and they exit 75 (EXIT_PREEMPTED). The batch shell
#            waits for that, then runs `scontrol requeue $SLURM_JOB_ID`: the job goes back to
#            the queue under the same id (same log file with --open-mode=append) and its next
#            run continues from OUT/checkpoints/latest because of `--resume auto`.
#   SIGTERM  (scancel, preemption, node shutdown) is NOT forwarded: SLURM sends SIGTERM to every
#            process of every step itself, and a second signal makes grerank stop at once,
#            without its checkpoint. The shell only waits for the step (the processes save a
#            checkpoint and exit 75 within KillWait, else SLURM kills them) and does not
#            requeue: a cancelled job stays cancelled, and PreemptMode=REQUEUE requeues by itself.
#
# A step that exits 75 without a signal to the batch shell (e.g. `scancel --signal=USR1 JOBID`,
# which signals the steps directly) is requeued as well. Any other exit code ends the job with
# that code.

EXIT_PREEMPTED=75

_grerank_log() { printf '[sbatch %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

run_preemptible() {
  local step_pid rc interrupted=0 got=
  "$@" &
  step_pid=$!
  trap 'interrupted=1; got=USR1; _grerank_log "SIGUSR1: forwarding it to the step (srun pid $step_pid): checkpoint and stop"; kill -USR1 "$step_pid" 2>/dev/null' USR1
  trap 'interrupted=1; got=TERM; _grerank_log "SIGTERM: SLURM signals the step itself; waiting for it to save and exit"' TERM
  while :; do
    interrupted=0
    wait "$step_pid"
    rc=$?
    # `wait` returns early (128+signal) when a trapped signal arrives; wait again for the real
    # exit status (bash remembers it even if the step ended in the meantime).
    [ "$interrupted" = 1 ] || break
  done
  trap - USR1 TERM
  _grerank_log "step exited with code $rc"
  if [ "$rc" = "$EXIT_PREEMPTED" ] && [ "$got" != TERM ]; then
    _grerank_log "checkpoint saved; requeueing job ${SLURM_JOB_ID:-?} (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 )))"
    if scontrol requeue "${SLURM_JOB_ID:?not inside a SLURM job}"; then
      # SLURM now ends this run of the batch script; do not report a failure meanwhile.
      sleep 60
    fi
    _grerank_log "scontrol requeue failed; resubmit by hand (the run continues with --resume auto)"
  fi
  return "$rc"
}
