//! The console over a Unix socket in the data dir, so that a node running in the
//! background can be driven like `geth attach`: several sessions at once, each a line
//! protocol. Every reply to a command ends with a line [`END_OK`] or [`END_ERR`]; receipt
//! updates arrive later as plain lines. Output never holds a control character (values
//! are shown as hex when they would), so the end lines cannot be forged by data.

use super::{Console, Flow};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// File name of the console socket inside a data dir.
pub const SOCKET: &str = "console.sock";
/// Ends the reply to a command that succeeded.
pub const END_OK: &str = "\u{1e}ok";
/// Ends the reply to a command that failed.
pub const END_ERR: &str = "\u{1e}err";
/// Longest command line accepted.
pub const MAX_LINE: usize = 256 * 1024;

/// First pause after a failed accept (e.g. out of file descriptors); it doubles up to
/// [`MAX_BACKOFF`] while accepts keep failing.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between two failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Serves the console on `dir/console.sock` (owner-only) until the runtime stops.
pub fn serve(dir: &Path, console: Console) -> io::Result<PathBuf> {
    let path = dir.join(SOCKET);
    let listener = bind_private(dir, &path)?;
    tokio::spawn(accept_loop(listener, console));
    Ok(path)
}

/// Binds the socket so that no other user can reach it at any instant.
///
/// Binding at `path` and then chmod-ing leaves a window in which the socket has the
/// umask's mode, and the data dir may be open to others (it is made 0700 only when the
/// node creates it; a user may have made it wider, and we should not change its mode
/// behind their back). So the socket is bound inside a fresh directory made 0700 by
/// this call (mkdir fails rather than reuse an existing one, so it is ours and no other
/// user can enter it), made 0600 there, and only then renamed into place: rename is
/// atomic, keeps the mode, and replaces a stale socket left by a node that died (the
/// caller holds the data dir's lock, so no live node uses it).
fn bind_private(dir: &Path, path: &Path) -> io::Result<UnixListener> {
    let staging = Staging::create(dir)?;
    let inner = staging.0.join(SOCKET);
    let listener = UnixListener::bind(&inner)?;
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&inner, path)?;
    Ok(listener)
}

/// A private (0700) directory inside the data dir, removed when dropped.
struct Staging(PathBuf);

impl Staging {
    fn create(dir: &Path) -> io::Result<Staging> {
        let mut attempt = 0u32;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(".console-{}-{nanos:x}-{attempt}", std::process::id());
            let path = dir.join(name);
            // mkdir applies the umask to 0700, which can only take bits away.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let staging = Staging(path);
                    // A umask that took the owner's own bits would leave it unusable.
                    std::fs::set_permissions(&staging.0, std::fs::Permissions::from_mode(0o700))?;
                    return Ok(staging);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Empty once the socket is renamed out; holds it only if binding failed midway.
        let _ = std::fs::remove_file(self.0.join(SOCKET));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Accepts console sessions until the runtime stops. An accept error (out of file
/// descriptors, say) is logged and retried after a pause: the console must outlive it.
async fn accept_loop(listener: UnixListener, console: Console) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = MIN_BACKOFF;
                tokio::spawn(session(stream, console.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "console socket accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of input. An over-long
/// line is consumed to its end and reported as an error, so no part of it runs.
pub async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        if buf.last() != Some(&b'\n') {
            skip_line(reader).await?;
        }
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8"))
}

/// Discards input up to and including the next newline (or the end of input).
async fn skip_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<()> {
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
            }
        }
    }
}

async fn session(stream: UnixStream, console: Console) {
    let (read, mut write) = stream.into_split();
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    let (closing, mut closed) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                line = lines.recv() => line,
                // The session ended: send what is queued, then close, without waiting
                // for receipts still being followed (their tasks stop on the next send).
                _ = &mut closed => {
                    let mut rest = String::new();
                    while let Ok(line) = lines.try_recv() {
                        rest.push_str(&line);
                        rest.push('\n');
                    }
                    let _ = write.write_all(rest.as_bytes()).await;
                    break;
                }
            };
            let Some(line) = line else { break };
            if write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut reader = BufReader::new(read);
    loop {
        let line = match read_line(&mut reader).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                let _ = out.send(format!("error: {e}"));
                let _ = out.send(END_ERR.into());
                break;
            }
        };
        let (ok, flow) = console.run_line(&line, &out).await;
        let _ = out.send(if ok { END_OK } else { END_ERR }.into());
        if flow == Flow::Quit {
            break;
        }
    }
    let _ = closing.send(());
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn staging_dirs_are_private_even_in_an_open_dir_and_go_away() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let staging = Staging::create(tmp.path()).unwrap();
        assert_eq!(mode(&staging.0), 0o700);
        let other = Staging::create(tmp.path()).unwrap();
        assert_ne!(staging.0, other.0, "each bind gets a fresh directory");
        let path = staging.0.clone();
        drop(staging);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn the_socket_is_bound_in_a_private_dir_and_appears_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.join(SOCKET);
        // A stale socket of a node that died is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = bind_private(dir, &path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let bound = listener.local_addr().unwrap();
        let bound = bound.as_pathname().expect("a path socket");
        let staging = bound.parent().unwrap();
        assert_eq!(staging.parent(), Some(dir), "bound inside the data dir");
        assert!(
            staging
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".console-")),
            "bound in a staging dir, not at {}",
            bound.display()
        );
        assert!(!staging.exists(), "the staging dir is gone");
        // The renamed socket is the live one.
        let client = UnixStream::connect(&path).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        drop(client);
    }
}
