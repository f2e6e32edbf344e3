//! The kit's BIND is real: a TSIG-signed update changes the answer, an unsigned one is refused.

use std::net::Ipv4Addr;
use std::time::Instant;

use altair_dns::DnsClient;
use altair_testkit::bind::{Bind, BindOptions};
use hickory_proto::op::ResponseCode;

#[tokio::test]
async fn signed_update_moves_the_record_and_unsigned_is_refused() {
    let old = Ipv4Addr::new(10, 231, 0, 10);
    let new = Ipv4Addr::new(10, 231, 0, 11);
    let started = Instant::now();
    let server = Bind::start(BindOptions {
        records: vec![("primary.c1".into(), old)],
        ..BindOptions::default()
    })
    .await
    .expect("start BIND");
    eprintln!("BIND ready in {:?}", started.elapsed());

    let signed =
        DnsClient::new(server.addr(), server.zone(), Some(server.tsig_key())).expect("client");
    let unsigned = DnsClient::new(server.addr(), server.zone(), None).expect("client");
    assert_eq!(
        signed.query_a("primary.c1").await.expect("query"),
        vec![old]
    );

    let err = unsigned
        .compare_and_swap_a("primary.c1", &[old], &[new], 1)
        .await
        .expect_err("an unsigned update must be refused");
    assert!(
        matches!(
            err,
            altair_dns::DnsError::Rejected {
                code: ResponseCode::Refused,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        signed.query_a("primary.c1").await.expect("query"),
        vec![old]
    );

    signed
        .compare_and_swap_a("primary.c1", &[old], &[new], 1)
        .await
        .expect("signed compare-and-swap");
    assert_eq!(
        signed.query_a("primary.c1").await.expect("query"),
        vec![new]
    );

    // The swap is conditional: a stale expectation is refused and changes nothing.
    let err = signed
        .compare_and_swap_a("primary.c1", &[old], &[old], 1)
        .await
        .expect_err("stale compare-and-swap");
    assert!(err.is_prerequisite_failure(), "{err}");
    assert_eq!(
        signed.query_a("primary.c1").await.expect("query"),
        vec![new]
    );
}

/// Swaps asked for at once go to BIND together (group commit), each with its own
/// prerequisite: all succeed, and a stale one among them fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_swaps_are_batched_and_a_stale_one_fails_alone() {
    let clusters = 40u8;
    let old = |i: u8| Ipv4Addr::new(10, 232, i, 10);
    let new = |i: u8| Ipv4Addr::new(10, 232, i, 11);
    let server = Bind::start(BindOptions {
        records: (0..clusters)
            .map(|i| (format!("primary.c{i}"), old(i)))
            .collect(),
        ..BindOptions::default()
    })
    .await
    .expect("start BIND");
    let dns =
        DnsClient::new(server.addr(), server.zone(), Some(server.tsig_key())).expect("client");
    let started = Instant::now();
    let swaps = (0..clusters).map(|i| {
        let dns = dns.clone();
        async move {
            // c7 expects a record it does not hold: stale.
            let expected = if i == 7 { new(i) } else { old(i) };
            let r = dns
                .compare_and_swap_a(&format!("primary.c{i}"), &[expected], &[new(i)], 1)
                .await;
            (i, r)
        }
    });
    let results = futures_util::future::join_all(swaps).await;
    eprintln!(
        "{clusters} concurrent swaps answered in {:?}",
        started.elapsed()
    );
    for (i, r) in results {
        let now = dns.query_a(&format!("primary.c{i}")).await.expect("query");
        if i == 7 {
            let err = r.expect_err("the stale swap is refused");
            assert!(err.is_prerequisite_failure(), "{err}");
            assert_eq!(now, vec![old(i)], "the stale swap changed nothing");
        } else {
            r.unwrap_or_else(|e| panic!("swap of c{i}: {e}"));
            assert_eq!(now, vec![new(i)], "c{i} moved");
        }
    }
}
