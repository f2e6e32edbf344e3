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
