//! What the sources that run a child process share (`[[exec]]` commands, `journalctl`):
//! the restart delays and stopping the child's process group.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Restart delays: from `min`, doubling with jitter, capped at `max`, never giving up.
pub fn restart_delays(min: Duration, max: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Sends `signal` to the process group `pgid` (the child was started as its leader).
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Stops a child started as a process group leader: SIGTERM to its group, SIGKILL to the
/// group after `grace`. Returns its exit status (`None` if it could not be waited for).
pub async fn stop_group(
    child: &mut tokio::process::Child,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    let Some(pid) = child.id() else {
        return child.wait().await.ok();
    };
    signal_group(pid, libc::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            // Whatever of the group is left (children that ignored SIGTERM) goes too.
            signal_group(pid, libc::SIGKILL);
            status.ok()
        }
        Err(_) => {
            tracing::warn!(
                pid,
                ?grace,
                "the process did not stop after SIGTERM; sending SIGKILL to its process group"
            );
            signal_group(pid, libc::SIGKILL);
            child.wait().await.ok()
        }
    }
}

/// How a process ended, as words and as the `status` label of the exit metric.
pub fn describe_exit(status: &std::process::ExitStatus) -> (String, String) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (format!("exited with status {c}"), c.to_string()),
        (None, Some(s)) => (format!("was killed by signal {s}"), format!("signal_{s}")),
        _ => ("ended".into(), "unknown".into()),
    }
}
