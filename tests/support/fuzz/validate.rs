//! Fuzz bodies of the validators: mutated blocks and txs against a real chain and mempool.

use super::*;

/// Programs for the validator targets: a few ops each, plus one of every op.
pub fn program_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![vec![], vec![0], vec![2], vec![3]];
    for op in 0..18u8 {
        out.push(vec![0, op, 1, 1, 1, 1, 1, 1, 1, 1]);
        out.push(vec![1, op, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    out
}

pub fn block_validate(data: &[u8]) -> String {
    let f = fixture();
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let real = f.c.clone();
    let mut block = real.clone();
    let now = now_ms();
    let pool: Vec<Tx> = f.a.txs.iter().chain(&f.b.txs).cloned().collect();
    for _ in 0..12 {
        if inp.is_empty() {
            break;
        }
        let n = block.txs.len();
        let h = &mut block.header;
        match inp.u8() % 18 {
            0 => {
                let any = inp.u32();
                h.version = inp.choose(&[0, 2, u32::MAX, any]);
            }
            1 => {
                let d = inp.u8();
                h.height = match d % 4 {
                    0 => h.height.wrapping_add(1),
                    1 => h.height.wrapping_sub(1),
                    2 => u64::MAX,
                    _ => 0,
                }
            }
            2 => {
                h.prev = match inp.u8() % 5 {
                    0 => f.params.genesis_hash(),
                    1 => f.a.hash(),
                    2 => real.hash(),
                    3 => inp.hash(),
                    _ => f.b.hash(),
                }
            }
            3 => {
                h.time = match inp.u8() % 7 {
                    0 => f.b.header.time,
                    1 => f.a.header.time,
                    2 => 0,
                    3 => u64::MAX,
                    4 => now + 2 * 60 * 1000 + 10_000,
                    5 => now,
                    _ => inp.u64(),
                }
            }
            4 => h.bits = inp.choose(&[0, 3, 5, 64, 65, u32::MAX]),
            5 => h.nonce = inp.u64(),
            6 => h.merkle = inp.hash(),
            7 => {
                if n > 0 {
                    block.txs.remove(inp.pick(n));
                }
            }
            8 => {
                if n > 0 {
                    let t = block.txs[inp.pick(n)].clone();
                    block.txs.push(t);
                }
            }
            9 => {
                if n > 1 {
                    block.txs.swap(inp.pick(n), inp.pick(n));
                }
            }
            10 => {
                let t = pool[inp.pick(pool.len())].clone();
                let at = inp.pick(n + 1);
                block.txs.insert(at, t);
            }
            11 => {
                let t = f.spare[inp.pick(f.spare.len())].clone();
                let at = inp.pick(n + 1);
                block.txs.insert(at, t);
            }
            12 => {
                if n > 0 {
                    let i = inp.pick(n);
                    block.txs[i] = mutate_tx(&block.txs[i], &mut inp);
                }
            }
            13 => {
                let mut bytes = codec::encode(&block);
                let at = inp.pick(bytes.len());
                bytes[at] ^= inp.u8() | 1;
                if let Ok(b) = codec::decode::<Block>(&bytes, MAX_MESSAGE_BYTES) {
                    block = b;
                }
            }
            14 => block.txs.truncate(inp.pick(n + 1)),
            15 => {
                if inp.u8() < 16 {
                    block.txs.extend_from_slice(crowd());
                }
            }
            16 => {
                // A maximal value, several times: over the byte limit.
                for _ in 0..(1 + inp.u8() % 20) {
                    block.txs.push(f.spare[3].clone());
                }
            }
            _ => h.merkle = merkle_root(&block.txs),
        }
    }
    if flags & 1 == 0 {
        block.header.merkle = block.compute_merkle();
    }
    if flags & 2 == 0 && block.header.bits <= 12 {
        block.header = pow::solve(block.header);
    }
    let admission = if flags & 4 != 0 {
        Admission::Gossip
    } else {
        Admission::Any
    };
    let mut chain = base_chain();
    let hash = block.hash();
    let same = block == real;
    let out = judge(&mut chain, block, admission);
    // Whatever came before, the honest block is still accepted.
    match chain.process_block(real.clone()) {
        Ok(_) => {}
        Err(BlockError::AlreadyKnown(h)) if h == hash && (same || out == "block:ok") => {}
        Err(e) => panic!("after {out}, the honest block was refused: {e}"),
    }
    out
}

pub fn tx_admit(data: &[u8]) -> String {
    let f = fixture();
    let mut inp = Input::new(data);
    let limits = MempoolLimits {
        max_txs: 1 + inp.u8() as usize % 8,
        max_bytes: 150 + inp.u16() as usize * 4,
        max_per_author: 1 + inp.u8() as usize % 4,
        expiry: Duration::from_secs(1 + inp.u8() as u64),
    };
    let own = inp.bool().then(|| key(3).public());
    let mut mempool = Mempool::with_limits(limits, own);
    let mut chain = base_chain();
    let now = now_ms();
    let mut made: Vec<Tx> = f.spare.clone();
    let mut readded = false;
    let mut last = String::from("none");
    for _ in 0..16 {
        if inp.is_empty() {
            break;
        }
        let tx = match inp.u8() % 9 {
            0 => {
                let kp = key(1 + inp.u8() % 5);
                let op = if inp.bool() {
                    Op::Delete {
                        key: some_key(&mut inp),
                    }
                } else {
                    let k = some_key(&mut inp);
                    let len = inp.choose(&VALUE_LENS);
                    Op::Put {
                        key: k,
                        value: vec![inp.u8(); len],
                    }
                };
                match Tx::new(&kp, op, inp.u8() as u64, timestamp(&mut inp, now)) {
                    Ok(tx) => Some(tx),
                    Err(e) => {
                        last = label("new", &Err::<(), _>(e));
                        None
                    }
                }
            }
            1 | 2 => {
                let base = made[inp.pick(made.len())].clone();
                Some(mutate_tx(&base, &mut inp))
            }
            3 => {
                let all: Vec<&Tx> = f.a.txs.iter().chain(&f.b.txs).collect();
                Some(all[inp.pick(all.len())].clone())
            }
            4 => {
                let n = inp.u8() as usize;
                codec::decode::<Tx>(inp.bytes(n), MAX_MESSAGE_BYTES).ok()
            }
            5 => {
                let id = made[inp.pick(made.len())].id();
                if let Some(t) = mempool.remove(&id) {
                    assert_eq!(t.id(), id);
                }
                assert!(!mempool.contains(&id));
                None
            }
            6 => {
                let t = made[inp.pick(made.len())].clone();
                mempool.readd(t);
                readded = true;
                None
            }
            7 => {
                let later = Instant::now() + Duration::from_secs(inp.u8() as u64 * 30);
                for id in mempool.expire(later) {
                    assert!(!mempool.contains(&id));
                }
                None
            }
            _ => {
                let (n, bytes) = (inp.u8() as usize % 6, inp.u16() as usize * 8);
                let t = mempool.template(n, bytes);
                assert!(t.len() <= n, "template over its count");
                assert!(
                    t.iter().map(Tx::size).sum::<usize>() <= bytes,
                    "template over its bytes"
                );
                None
            }
        };
        if let Some(tx) = tx {
            let _ = check_timestamp(tx.timestamp(), now);
            let id = tx.id();
            let r = chain.submit_tx(tx.clone());
            if let Ok(true) = r {
                assert!(chain.mempool().contains(&id));
                assert!(tx.verify_signature().is_ok(), "admitted a bad signature");
            }
            last = label("submit", &r);
            let r = mempool.insert(tx.clone());
            if let Ok(true) = r {
                assert!(mempool.contains(&id));
            }
            made.push(tx);
        }
        // The pool's bounds and its byte count.
        let ids = mempool.ids();
        assert_eq!(ids.len(), mempool.len());
        let bytes: usize = ids
            .iter()
            .map(|id| mempool.get(id).expect("listed").size())
            .sum();
        assert_eq!(bytes, mempool.bytes(), "byte count drifted");
        if !readded {
            assert!(mempool.len() <= limits.max_txs, "over the count limit");
            assert!(mempool.bytes() <= limits.max_bytes, "over the byte limit");
        }
    }
    last
}
