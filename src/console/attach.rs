//! The client side of the console socket: `kvchain attach` runs one command or an
//! interactive session against a node running in the background.

use super::socket::{read_line, END_ERR, END_OK};
use std::io;
use std::path::Path;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

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
