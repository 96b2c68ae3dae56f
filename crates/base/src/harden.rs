//! What every vault process does first. vault and vault-core hold
//! unwrapped IAM keys, PINs and STS secrets in memory (and `--ecs-server`
//! runs for hours): made non-dumpable, a process leaves no core dump
//! (Ctrl-\, a crash) and cannot be ptrace-attached or have its memory read
//! through /proc by other processes of the same user without
//! CAP_SYS_PTRACE. A program vault runs (`exec`'s command, mfa_process)
//! gets its own dumpability back when it is exec'd.
//!
//! The core size limit goes to 0 as well: where `fs.suid_dumpable` is 2
//! (Ubuntu, Fedora) the kernel still hands a non-dumpable process's core
//! to the core_pattern pipe, and systemd-coredump and apport store nothing
//! only when RLIMIT_CORE says so. Before vault turns into another program
//! (`exec`, or `vault` handing over to `vault-core`) it gives the user's
//! limit back; a program started beside a running vault (the
//! `--ecs-server` command, credential_process, mfa_process) starts with a
//! soft limit of 0 and may raise it again (`ulimit -c`) up to the hard
//! limit, which vault leaves alone.

#[cfg(unix)]
static USER_CORE_LIMIT: std::sync::OnceLock<rustix::process::Rlimit> = std::sync::OnceLock::new();

/// Makes this process non-dumpable, with no core file size; a failure is
/// no reason not to run.
pub fn process() {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        log::debug!(target: "vault", "cannot make this process non-dumpable: {e}");
    }
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let user = getrlimit(Resource::Core);
        let none = Rlimit {
            current: Some(0),
            maximum: user.maximum,
        };
        let _ = USER_CORE_LIMIT.set(user);
        if let Err(e) = setrlimit(Resource::Core, none) {
            log::debug!(target: "vault", "cannot set the core file size limit to 0: {e}");
        }
    }
}

/// Just before this process execs another program: the user's core limit
/// back (dumpability comes back by itself with the exec).
pub fn before_exec() {
    #[cfg(unix)]
    if let Some(user) = USER_CORE_LIMIT.get() {
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, *user);
    }
}

/// The exec failed and vault goes on: no core limit again.
pub fn after_failed_exec() {
    #[cfg(unix)]
    if let Some(user) = USER_CORE_LIMIT.get() {
        let none = rustix::process::Rlimit {
            current: Some(0),
            maximum: user.maximum,
        };
        let _ = rustix::process::setrlimit(rustix::process::Resource::Core, none);
    }
}
