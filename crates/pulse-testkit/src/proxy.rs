//! A TCP proxy in front of a broker that can refuse produce requests for chosen topics, as a
//! broker does when a topic's ACL is revoked. It makes "the output topic is unavailable" a
//! fault a test can switch on and off against a real broker process that has no authorisation.
//!
//! The broker must advertise the proxy's address, so that clients reach it through the proxy
//! after the first metadata request too.

use crate::wire::{Produce, Refusal};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread;

/// Topics whose produce requests are refused, shared by every connection.
type Refused = Arc<RwLock<HashSet<Vec<u8>>>>;

#[derive(Debug)]
pub struct FaultProxy {
    refused: Refused,
}

impl FaultProxy {
    /// Accepts connections on `listener` and relays them to `upstream`.
    pub fn start(listener: TcpListener, upstream: String) -> Self {
        let refused = Refused::default();
        let shared = refused.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(broker) = TcpStream::connect(&upstream) else {
                    continue;
                };
                relay(client, broker, shared.clone());
            }
        });
        Self { refused }
    }

    /// From now on produce requests for `topics` are refused; an empty list lifts the refusal.
    pub fn refuse_produce(&self, topics: &[&str]) {
        let mut r = self.refused.write().unwrap_or_else(PoisonError::into_inner);
        *r = topics.iter().map(|t| t.as_bytes().to_vec()).collect();
    }
}

/// Reads one length-prefixed frame; `None` at the end of the stream.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(len)).ok()?];
    s.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_frame(s: &mut TcpStream, frame: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    s.write_all(&out)
}

/// Relays one client connection in both directions, frame by frame. Refusals answered by the
/// proxy and broker responses share the client socket under a lock, whole frames at a time.
fn relay(client: TcpStream, broker: TcpStream, refused: Refused) {
    let (Ok(mut from_client), Ok(mut to_broker), Ok(mut from_broker)) =
        (client.try_clone(), broker.try_clone(), broker.try_clone())
    else {
        return;
    };
    let to_client = Arc::new(Mutex::new(client));
    // Refusals waiting for the broker's answer to the rest of their request, by correlation id.
    let pending: Arc<Mutex<HashMap<i32, Refusal>>> = Arc::default();

    let (out, waiting) = (to_client.clone(), pending.clone());
    thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_client) {
            let parsed = Produce::parse(&frame);
            let (forward, refusal) = match &parsed {
                Some(p) => {
                    let r = refused.read().unwrap_or_else(PoisonError::into_inner);
                    p.split(|t| r.contains(t))
                }
                None => (Some(frame.clone()), None),
            };
            let id = parsed.as_ref().map_or(0, |p| p.correlation_id);
            let sent = match (forward, refusal) {
                (Some(f), Some(r)) => {
                    lock(&waiting).insert(id, r);
                    write_frame(&mut to_broker, &f)
                }
                (Some(f), None) => write_frame(&mut to_broker, &f),
                (None, Some(r)) => write_frame(&mut lock(&out), &r.response(id)),
                (None, None) => Ok(()), // acks = 0: nobody waits for an answer
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = to_broker.shutdown(Shutdown::Both);
        let _ = lock(&out).shutdown(Shutdown::Both);
    });

    thread::spawn(move || {
        while let Some(frame) = read_frame(&mut from_broker) {
            let id = frame
                .get(..4)
                .map_or(0, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let refusal = lock(&pending).remove(&id);
            let frame = match refusal.and_then(|r| r.merge(&frame)) {
                Some(merged) => merged,
                None => frame,
            };
            if write_frame(&mut lock(&to_client), &frame).is_err() {
                break;
            }
        }
        let _ = from_broker.shutdown(Shutdown::Both);
        let _ = lock(&to_client).shutdown(Shutdown::Both);
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
