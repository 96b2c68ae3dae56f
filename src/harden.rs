//! What every vault process does first. vault and vault-core hold
//! unwrapped IAM keys, PINs and STS secrets in memory (and `--ecs-server`
//! runs for hours): made non-dumpable, a process leaves no core dump
//! (Ctrl-\, a crash) and cannot be ptrace-attached or have its memory read
//! through /proc by other processes of the same user without
//! CAP_SYS_PTRACE. A program vault runs (`exec`'s command, mfa_process)
//! gets its own dumpability back when it is exec'd.

/// Makes this process non-dumpable; a failure is no reason not to run.
pub fn process() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        log::debug!(target: "vault", "cannot make this process non-dumpable: {e}");
    }
}
