//! Fuzz bodies of the wire formats: txs, blocks, gossip, sync requests, responses and frames.

use super::*;

pub fn tx_decode(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<Tx>(data, MAX_MESSAGE_BYTES));
    check_usage("Tx", data, u, MAX_MESSAGE_BYTES);
    let Ok(tx) = r else {
        return label("decode", &r);
    };
    let back: Tx = codec::decode(&codec::encode(&tx), MAX_MESSAGE_BYTES).expect("re-decodes");
    assert_eq!(back, tx);
    assert_eq!(back.id(), tx.id());
    // A decoded tx passed the op rules; the signature may still be bad.
    check_op(tx.op()).expect("a decoded tx has a valid op");
    let sig = tx.verify_signature();
    let _ = check_timestamp(tx.timestamp(), now_ms());
    label("tx", &sig)
}

pub fn block_decode(data: &[u8]) -> String {
    let (header, u) = measure(|| codec::decode::<Header>(data, MAX_MESSAGE_BYTES));
    check_usage("Header", data, u, MAX_MESSAGE_BYTES);
    if let Ok(h) = &header {
        let back: Header = codec::decode(&codec::encode(h), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(&back, h);
        assert_eq!(Header::from_bytes(&h.to_bytes()), *h);
    }
    let (r, u) = measure(|| codec::decode::<Block>(data, MAX_MESSAGE_BYTES));
    check_usage("Block", data, u, MAX_MESSAGE_BYTES);
    let Ok(block) = r else {
        return format!("{}/{}", label("header", &header), label("block", &r));
    };
    let back: Block = codec::decode(&codec::encode(&block), MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(back, block);
    assert_eq!(back.hash(), block.hash());
    let _ = block.size();
    let f = fixture();
    let rules = check_standalone(&block, &f.params, Some(now_ms()));
    label("standalone", &rules)
}

pub fn gossip_seeds() -> Vec<Vec<u8>> {
    let f = fixture();
    let mut out = vec![];
    for tx in f.spare.iter().take(3).chain(&f.c.txs) {
        out.push([vec![0], codec::encode(tx)].concat());
    }
    for b in [&f.a, &f.b, &f.c] {
        out.push([vec![1], codec::encode(b)].concat());
    }
    out.push([vec![2], codec::encode(&f.c)].concat());
    out
}

/// As the network service decodes gossip (`on_gossip`: by topic, with
/// `MAX_MESSAGE_BYTES`) and the node judges it (`judge_tx`, `judge_block`).
pub fn gossip(data: &[u8]) -> String {
    let mut inp = Input::new(data);
    let topic = inp.u8() % 3;
    let body = inp.rest();
    match topic {
        0 => {
            let (r, u) = measure(|| codec::decode::<Tx>(body, MAX_MESSAGE_BYTES));
            check_usage("gossip Tx", body, u, MAX_MESSAGE_BYTES);
            let Ok(tx) = r else {
                return label("tx", &r);
            };
            if let Err(e) = check_timestamp(tx.timestamp(), now_ms()) {
                return label("tx:clock", &Err::<(), _>(e));
            }
            let mut chain = base_chain();
            let id = tx.id();
            let r = chain.submit_tx(tx);
            if let Ok(true) = r {
                assert!(chain.mempool().contains(&id));
            }
            label("submit", &r)
        }
        1 => {
            let (r, u) = measure(|| codec::decode::<Block>(body, MAX_MESSAGE_BYTES));
            check_usage("gossip Block", body, u, MAX_MESSAGE_BYTES);
            let Ok(block) = r else {
                return label("block", &r);
            };
            let mut chain = base_chain();
            judge(&mut chain, block, Admission::Gossip)
        }
        _ => "unknown topic".into(),
    }
}

/// Processes `block`, checks what an error must leave alone, and labels the result.
pub fn judge(chain: &mut Chain, block: Block, admission: Admission) -> String {
    let tip = chain.tip_hash();
    let height = chain.height();
    let hash = block.hash();
    let r = chain.process_block_as(block, admission);
    match &r {
        Ok(acc) => {
            assert!(
                acc.blocks.contains(&hash) || acc.blocks.is_empty() || chain.block(&hash).is_some()
            );
            assert!(
                chain.block(&hash).is_some(),
                "an accepted block is in the tree"
            );
        }
        Err(e) => {
            assert_eq!(chain.tip_hash(), tip, "a refused block moved the tip: {e}");
            assert_eq!(chain.height(), height);
            if *e == BlockError::BodyMismatch {
                assert!(
                    !chain.tree().is_invalid(&hash),
                    "a mutated copy was remembered as invalid"
                );
            }
        }
    }
    label("block", &r)
}

fn sync_requests() -> Vec<SyncRequest> {
    let f = fixture();
    vec![
        SyncRequest::Status,
        SyncRequest::Blocks {
            locator: vec![f.b.hash(), f.a.hash(), f.params.genesis_hash()],
            max: MAX_SYNC_BLOCKS,
        },
        SyncRequest::Blocks {
            locator: (0..MAX_LOCATOR as u8)
                .map(|i| BlockHash::digest(&[i]))
                .collect(),
            max: u32::MAX,
        },
        SyncRequest::Block(f.c.hash()),
    ]
}

fn sync_responses() -> Vec<SyncResponse> {
    let f = fixture();
    vec![
        SyncResponse::Status(ChainStatus {
            genesis: f.params.genesis_hash(),
            tip: f.b.hash(),
            height: 2,
            total_work: 12345u128.to_be_bytes(),
        }),
        SyncResponse::Blocks(vec![f.a.clone(), f.b.clone(), f.c.clone()]),
        SyncResponse::Blocks(vec![]),
        SyncResponse::Block(Some(f.c.clone())),
        SyncResponse::Block(None),
    ]
}

pub fn sync_request_seeds() -> Vec<Vec<u8>> {
    sync_requests().iter().map(codec::encode).collect()
}

pub fn sync_response_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = sync_responses().iter().map(codec::encode).collect();
    out.push(codec::encode(&SyncResponse::Blocks(vec![
        sample_block();
        3
    ])));
    out
}

pub fn sync_request(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<SyncRequest>(data, MAX_REQUEST_BYTES));
    check_usage("SyncRequest", data, u, MAX_REQUEST_BYTES);
    if let Ok(req) = &r {
        if let SyncRequest::Blocks { locator, .. } = req {
            assert!(locator.len() <= MAX_LOCATOR);
        }
        let back: SyncRequest = codec::decode(&codec::encode(req), MAX_REQUEST_BYTES).unwrap();
        assert_eq!(&back, req);
        return match req {
            SyncRequest::Status => "status".into(),
            SyncRequest::Blocks { .. } => "blocks".into(),
            SyncRequest::Block(_) => "block".into(),
        };
    }
    label("request", &r)
}

pub fn sync_response(data: &[u8]) -> String {
    let (r, u) = measure(|| codec::decode::<SyncResponse>(data, MAX_RESPONSE_BYTES));
    check_usage("SyncResponse", data, u, MAX_RESPONSE_BYTES);
    if let Ok(res) = &r {
        if let SyncResponse::Blocks(blocks) = res {
            assert!(blocks.len() <= MAX_SYNC_BLOCKS as usize);
        }
        let back: SyncResponse = codec::decode(&codec::encode(res), MAX_RESPONSE_BYTES).unwrap();
        assert_eq!(&back, res);
        return match res {
            SyncResponse::Status(_) => "status".into(),
            SyncResponse::Blocks(b) => format!("blocks:{}", b.len().min(4)),
            SyncResponse::Block(b) => format!("block:{}", b.is_some()),
        };
    }
    label("response", &r)
}

/// A stream that hands out at most `chunk` bytes a read, may answer `Pending` every other
/// poll (waking itself), and may fail at `fail_at`.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    pause: bool,
    paused: bool,
    fail_at: Option<usize>,
}

impl futures::AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pause {
            self.paused = !self.paused;
            if self.paused {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if self.fail_at.is_some_and(|at| self.pos >= at) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut")));
        }
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

pub fn sync_frame_seeds() -> Vec<Vec<u8>> {
    let mut out = vec![];
    for req in sync_requests() {
        let mut buf = futures::io::Cursor::new(Vec::new());
        wait(write_frame(&mut buf, &codec::encode(&req))).unwrap();
        out.push([vec![0, 255], buf.into_inner()].concat());
    }
    for res in sync_responses() {
        let mut buf = futures::io::Cursor::new(Vec::new());
        wait(write_frame(&mut buf, &codec::encode(&res))).unwrap();
        out.push([vec![1, 7], buf.into_inner()].concat());
    }
    // A length prefix claiming the whole limit, with little behind it.
    out.push(
        [
            vec![1, 255],
            (MAX_RESPONSE_BYTES as u32).to_le_bytes().to_vec(),
            vec![0x83; 8],
        ]
        .concat(),
    );
    out
}

pub fn sync_frame(data: &[u8]) -> String {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let chunk = 1 + inp.u8() as usize;
    let stream = inp.rest();
    let mut io = Chunked {
        data: stream,
        pos: 0,
        chunk,
        pause: mode & 8 != 0,
        paused: false,
        fail_at: (mode & 16 != 0).then_some(chunk * 3),
    };
    let proto = Names::new("0badcafe").sync();
    let mut codec = SyncCodec;
    // What was read can be at most the stream, which a buffer doubling as it grows holds
    // in twice its size; a length prefix alone must not reserve more.
    // (`read_frame` reserves up to 64 KiB for a frame; errors allocate a little.)
    let bound = |decoder: usize| 64 * 1024 + 4096 + 2 * stream.len() + decoder;
    let expect_body = || {
        let len = u32::from_le_bytes(stream.get(..4)?.try_into().ok()?) as usize;
        stream.get(4..4 + len)
    };
    match mode % 3 {
        0 => {
            let (r, u) = measure(|| wait(codec.read_request(&proto, &mut io)));
            check_usage("read_request", stream, u, bound(MAX_REQUEST_BYTES));
            if let Ok(req) = &r {
                let body = expect_body().expect("a request was read from a whole frame");
                assert_eq!(
                    codec::decode::<SyncRequest>(body, MAX_REQUEST_BYTES)
                        .ok()
                        .as_ref(),
                    Some(req)
                );
            }
            label("read_request", &r.map_err(|e| e.kind()))
        }
        1 => {
            let (r, u) = measure(|| wait(codec.read_response(&proto, &mut io)));
            check_usage("read_response", stream, u, bound(2 * stream.len()));
            if let Ok(res) = &r {
                let body = expect_body().expect("a response was read from a whole frame");
                assert_eq!(
                    codec::decode::<SyncResponse>(body, MAX_RESPONSE_BYTES)
                        .ok()
                        .as_ref(),
                    Some(res)
                );
            }
            label("read_response", &r.map_err(|e| e.kind()))
        }
        _ => {
            let limit =
                [0, 1, 100, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES][(mode as usize >> 5) % 5];
            let (r, u) = measure(|| wait(read_frame(&mut io, limit)));
            check_usage("read_frame", stream, u, bound(0));
            if let Ok(frame) = &r {
                assert!(frame.len() <= limit);
                assert_eq!(Some(frame.as_slice()), expect_body());
            }
            label("read_frame", &r.map_err(|e| e.kind()))
        }
    }
}
