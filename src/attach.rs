//! The console over a Unix socket in the data dir, so that a node running in the
//! background can be driven like `geth attach`: several sessions at once, each a line
//! protocol. Every reply to a command ends with a line [`END_OK`] or [`END_ERR`]; receipt
//! updates arrive later as plain lines. Output never holds a control character (values
//! are shown as hex when they would), so the end lines cannot be forged by data.

use crate::console::{Console, Flow};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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

/// Serves the console on `dir/console.sock` (owner-only) until the runtime stops.
pub fn serve(dir: &Path, console: Console) -> io::Result<PathBuf> {
    let path = dir.join(SOCKET);
    // The caller holds the data dir's lock, so a socket file left here is stale.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(session(stream, console.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "console socket accept failed");
                    break;
                }
            }
        }
    });
    Ok(path)
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

/// Runs `command` on the node whose socket is `path`; prints the reply and returns
/// whether the command succeeded.
pub async fn run_once(path: &Path, command: &str) -> io::Result<bool> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{command}\n").as_bytes()).await?;
    let mut reader = BufReader::new(read);
    while let Some(line) = read_line(&mut reader).await? {
        match line.as_str() {
            END_OK => return Ok(true),
            END_ERR => return Ok(false),
            _ => println!("{line}"),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the node closed the console",
    ))
}

/// An interactive session: stdin lines go to the node, its lines to stdout, until `quit`,
/// end of input, or the node closing the socket.
pub async fn interactive(path: &Path) -> io::Result<()> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let printer = tokio::spawn(async move {
        let mut reader = BufReader::new(read);
        while let Ok(Some(line)) = read_line(&mut reader).await {
            if line != END_OK && line != END_ERR {
                println!("{line}");
            }
        }
    });
    let mut stdin = BufReader::new(tokio::io::stdin());
    while let Some(line) = read_line(&mut stdin).await? {
        if write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        if matches!(line.trim(), "quit" | "exit") {
            break;
        }
    }
    let _ = write.shutdown().await;
    let _ = printer.await;
    Ok(())
}
