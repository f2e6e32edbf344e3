//! Group commit of compare-and-swap updates: an authoritative server applies a zone's
//! updates one at a time (BIND: one journal write and one serial per update), so a storm
//! of failovers that each sent their own update would queue behind one another. Swaps
//! asked for while one update is in flight wait and go together in the next message —
//! one RFC 2136 UPDATE whose prerequisites all must hold. When the server refuses such a
//! message on a prerequisite (one record moved by someone else), each of its swaps is
//! sent again alone, so one stale swap never fails another.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, update_message};
use hickory_proto::rr::{Name, RecordSet};
use tokio::sync::{mpsc, oneshot};

use crate::{DnsError, Result};

/// At most this many swaps in one message (~150 bytes each with its prerequisite:
/// well inside what a server takes in one UDP datagram).
pub(crate) const MAX_SWAPS: usize = 16;

/// One asked-for swap and where its outcome goes.
pub(crate) struct Swap {
    pub name: Name,
    pub current: Vec<Ipv4Addr>,
    pub new: Vec<Ipv4Addr>,
    pub ttl: u32,
    pub reply: oneshot::Sender<Result<()>>,
}

/// Splits what is waiting into the next message (at most [`MAX_SWAPS`], one swap per
/// name: two swaps of one name in one message would refuse each other's prerequisite)
/// and what stays for a later one, in arrival order.
pub(crate) fn next_message<T>(waiting: Vec<T>, name_of: impl Fn(&T) -> &Name) -> (Vec<T>, Vec<T>) {
    let mut take = Vec::new();
    let mut keep = Vec::new();
    for s in waiting {
        if take.len() < MAX_SWAPS && !take.iter().any(|t| name_of(t) == name_of(&s)) {
            take.push(s);
        } else {
            keep.push(s);
        }
    }
    (take, keep)
}

/// One UPDATE holding every swap of `sets` (current, new) in `zone`.
pub(crate) fn message(zone: &Name, sets: Vec<(RecordSet, RecordSet)>) -> Option<Message> {
    let mut sets = sets.into_iter();
    let (current, new) = sets.next()?;
    let mut m = update_message::compare_and_swap(current, new, zone.clone(), true);
    for (current, new) in sets {
        use hickory_proto::op::UpdateMessage;
        let mut prerequisite = current.clone();
        prerequisite.set_ttl(0);
        m.add_pre_requisites(prerequisite);
        let mut delete = current;
        delete.set_dns_class(hickory_proto::rr::DNSClass::NONE);
        delete.set_ttl(0);
        m.add_updates(delete);
        m.add_updates(new);
    }
    Some(m)
}

/// The queue of a client's swaps; its sender task starts with the first swap.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    tx: std::sync::OnceLock<mpsc::UnboundedSender<Swap>>,
}

impl Queue {
    /// Queues `swap`, starting the sender (`send`: sends one message's swaps and answers
    /// each) on the first call.
    pub(crate) fn push<F, Fut>(&self, swap: Swap, send: F) -> std::result::Result<(), Box<Swap>>
    where
        F: Fn(Vec<Swap>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(rx, send));
            tx
        });
        tx.send(swap).map_err(|e| Box::new(e.0))
    }
}

/// Sends what has queued up, one message at a time: while one is in flight the next
/// gathers.
async fn run<F, Fut>(mut rx: mpsc::UnboundedReceiver<Swap>, send: F)
where
    F: Fn(Vec<Swap>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut waiting: Vec<Swap> = Vec::new();
    loop {
        if waiting.is_empty() {
            match rx.recv().await {
                Some(s) => waiting.push(s),
                None => return,
            }
        }
        while let Ok(s) = rx.try_recv() {
            waiting.push(s);
        }
        // A caller that gave up (its reply dropped) is not sent for.
        waiting.retain(|s| !s.reply.is_closed());
        let (take, keep) = next_message(std::mem::take(&mut waiting), |s| &s.name);
        waiting = keep;
        if !take.is_empty() {
            send(take).await;
        }
    }
}

/// The error every swap of a message gets when the message as a whole failed for a
/// reason other than a prerequisite (the server unreachable, refusing the key).
pub(crate) fn each_error(e: &DnsError, name: &Name) -> DnsError {
    match e {
        DnsError::Rejected {
            server,
            operation,
            code,
            ..
        } => DnsError::Rejected {
            server: *server,
            operation,
            name: name.to_string(),
            code: *code,
        },
        DnsError::Unreachable {
            server,
            operation,
            reason,
            ..
        } => DnsError::Unreachable {
            server: *server,
            operation,
            name: name.to_string(),
            reason: reason.clone(),
        },
        other => DnsError::Unreachable {
            server: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            operation: "update",
            name: name.to_string(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    #[test]
    fn one_swap_per_name_and_at_most_max_per_message() {
        let waiting = vec![n("a."), n("b."), n("a."), n("c.")];
        let (take, keep) = next_message(waiting, |x| x);
        assert_eq!(take, vec![n("a."), n("b."), n("c.")]);
        assert_eq!(keep, vec![n("a.")], "the second swap of a waits, in order");

        let many: Vec<Name> = (0..MAX_SWAPS + 3).map(|i| n(&format!("h{i}."))).collect();
        let (take, keep) = next_message(many, |x| x);
        assert_eq!(take.len(), MAX_SWAPS);
        assert_eq!(keep.len(), 3);
        assert_eq!(keep[0], n(&format!("h{MAX_SWAPS}.")));
    }

    #[test]
    fn a_message_holds_every_swap_with_its_prerequisite() {
        use hickory_proto::op::UpdateMessage;
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, Record, RecordType};
        let set = |name: &str, ip: [u8; 4]| {
            let name = n(name);
            let mut s = RecordSet::with_ttl(name.clone(), RecordType::A, 1);
            s.insert(Record::from_rdata(name, 1, RData::A(A(ip.into()))), 0);
            s
        };
        let zone = n("db.test.");
        let m = message(
            &zone,
            vec![
                (
                    set("primary.c1.db.test.", [10, 0, 0, 1]),
                    set("primary.c1.db.test.", [10, 0, 0, 2]),
                ),
                (
                    set("primary.c2.db.test.", [10, 0, 1, 1]),
                    set("primary.c2.db.test.", [10, 0, 1, 2]),
                ),
            ],
        )
        .expect("a message");
        assert_eq!(
            m.prerequisites().len(),
            2,
            "each swap's current record must hold"
        );
        assert_eq!(m.updates().len(), 4, "a delete and an add per swap");
        assert!(message(&zone, Vec::new()).is_none());
    }
}
