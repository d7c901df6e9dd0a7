//! Fuzz bodies of the files on disk: the block log, the chain opened from it, the journal.

use super::*;

// ---------------------------------------------------------------------------------------
// Files: the block log, the chain's log and the journal
// ---------------------------------------------------------------------------------------

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// An empty scratch directory of this thread's, reused from case to case.
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let dir = s.get_or_insert_with(|| tempfile::tempdir().expect("tempdir"));
        let path = dir.path().to_path_buf();
        for entry in std::fs::read_dir(&path).expect("scratch dir").flatten() {
            let p = entry.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
        path
    })
}

/// Splits bytes into frames loosely (lengths believed as far as the bytes go, checksums
/// ignored) and frames each payload again with a correct checksum: mutations of the
/// payloads then reach whatever reads the frames.
fn reframe(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut pos = 0;
    while pos + FRAME_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let start = pos + FRAME_HEADER;
        let end = start.saturating_add(len).min(bytes.len());
        out.extend_from_slice(&frame(&bytes[start..end]));
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    out
}

/// The file bytes an input stands for: its first byte says whether to re-checksum.
fn file_bytes(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => reframe(rest),
        Some((_, rest)) => rest.to_vec(),
        None => vec![],
    }
}

fn frames_file(payloads: &[Vec<u8>]) -> Vec<u8> {
    payloads.iter().flat_map(|p| frame(p)).collect()
}

pub fn block_log_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let payloads = vec![
        codec::encode(&f.a),
        vec![],
        codec::encode(&f.b),
        b"x".to_vec(),
    ];
    let good = frames_file(&payloads);
    vec![
        [vec![0], good.clone()].concat(),
        [vec![1], good.clone()].concat(),
        [vec![0], good[..good.len() - 3].to_vec()].concat(),
    ]
}

pub fn block_log_open(data: &[u8]) -> String {
    let bytes = file_bytes(data);
    let dir = scratch();
    let path = dir.join("x.log");
    std::fs::write(&path, &bytes).unwrap();
    let (log, payloads, recovery) = FrameLog::open(&path).expect("open never fails on content");
    let good = recovery.as_ref().map_or(bytes.len(), |r| r.offset as usize);
    assert!(good <= bytes.len());
    assert_eq!(
        frames_file(&payloads),
        bytes[..good],
        "payloads are the intact prefix"
    );
    assert_eq!(log.len(), good as u64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good as u64,
        "cut at the prefix"
    );
    if let Some(r) = &recovery {
        assert_eq!(
            std::fs::read(&r.saved_to).unwrap(),
            bytes[good..],
            "cut bytes saved"
        );
    }
    drop(log);
    let (_, again, rec) = FrameLog::open(&path).unwrap();
    assert_eq!(again, payloads, "reopen reads the same frames");
    assert!(rec.is_none(), "reopen finds nothing to cut");
    match recovery {
        None => format!("intact:{}", payloads.len().min(4)),
        Some(r) => format!("{:?}:{}", r.damage, payloads.len().min(4)),
    }
}

fn read_dir_file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_default()
}

pub fn chain_open_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = Chain::open(f.params.clone(), dir.path()).unwrap();
    for b in [&f.a, &f.b, &f.c] {
        chain.process_block(b.clone()).unwrap();
    }
    // A side branch: a sibling of `c`.
    let sib = block_on(&f.b.header, vec![put(&key(5), "side", "1", 0)], 7);
    chain.process_block(sib).unwrap();
    drop(chain);
    let log = read_dir_file(dir.path(), BLOCK_LOG);
    vec![[vec![1], log.clone()].concat(), [vec![0], log].concat()]
}

pub fn chain_open(data: &[u8]) -> String {
    let f = fixture();
    let bytes = file_bytes(data);
    let dir = scratch().join("chain");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(BLOCK_LOG), &bytes).unwrap();
    let r = Chain::open(f.params.clone(), &dir);
    let Ok((chain, _)) = r else {
        return label("open", &r.map(|_| ()));
    };
    let (tip, height) = (chain.tip_hash(), chain.height());
    drop(chain);
    let (again, rec) = Chain::open(f.params.clone(), &dir).expect("reopens");
    assert!(rec.is_none(), "reopen finds nothing to cut");
    assert_eq!(
        (again.tip_hash(), again.height()),
        (tip, height),
        "reopen: same tip"
    );
    format!("open:ok:{}", height.min(4))
}

pub fn journal_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path()).unwrap();
    j.add(&f.spare[0]).unwrap();
    j.add(&f.spare[1]).unwrap();
    j.add(&f.spare[2]).unwrap();
    j.done(&f.spare[0].id()).unwrap();
    drop(j);
    let bytes = read_dir_file(dir.path(), JOURNAL_FILE);
    vec![[vec![1], bytes.clone()].concat(), [vec![0], bytes].concat()]
}

pub fn journal_open(data: &[u8]) -> String {
    let bytes = file_bytes(data);
    let dir = scratch();
    std::fs::write(dir.join(JOURNAL_FILE), &bytes).unwrap();
    let r = Journal::open(&dir);
    let Ok((journal, pending)) = r else {
        return label("open", &r.map(|_| ()));
    };
    let ids: Vec<_> = pending.iter().map(Tx::id).collect();
    assert_eq!(journal.len(), pending.len());
    let held: Vec<_> = journal.pending().iter().map(Tx::id).collect();
    assert_eq!(held, ids, "pending() is what open returned");
    drop(journal);
    let (_, again) = Journal::open(&dir).expect("reopens");
    let again: Vec<_> = again.iter().map(Tx::id).collect();
    assert_eq!(again, ids, "reopen: the same pending writes");
    format!("open:ok:{}", ids.len().min(4))
}

// ---------------------------------------------------------------------------------------
// Validators: blocks against a real chain, txs through admission
// ---------------------------------------------------------------------------------------
