//! GTID arithmetic cost: what candidate choice pays per comparison.
//! Run with `make bench`; prints one line per operation.

#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use altair_core::gtid::{Flavor, GtidState};

fn time<F: FnMut()>(name: &str, iterations: u32, mut f: F) {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = started.elapsed() / iterations;
    println!("{name:<44} {:>10.0} ns/op", per.as_nanos() as f64);
}

fn main() {
    let maria = "0-1-182736,1-2-9981,2-3-77";
    let mysql = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-182736,\n\
                 4f22ab58-82db-22f2-af44-d91bb0530673:1-5:7-9981:10000-10002,\n\
                 5a33bc69-93ec-33f3-b055-ea2cc1641784:1-77";
    let ma = GtidState::parse(Flavor::MariaDb, maria).expect("valid");
    let mb = GtidState::parse(Flavor::MariaDb, "0-1-182730,1-2-9981").expect("valid");
    let ya = GtidState::parse(Flavor::Mysql, mysql).expect("valid");
    let yb = GtidState::parse(
        Flavor::Mysql,
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-182730",
    )
    .expect("valid");
    println!("benchmark                                         result");
    time("parse MariaDB position (3 domains)", 200_000, || {
        black_box(GtidState::parse(Flavor::MariaDb, black_box(maria)).ok());
    });
    time("parse MySQL set (3 UUIDs, 5 intervals)", 200_000, || {
        black_box(GtidState::parse(Flavor::Mysql, black_box(mysql)).ok());
    });
    time("compare MariaDB positions", 1_000_000, || {
        black_box(black_box(&ma).compare(black_box(&mb)).ok());
    });
    time("compare MySQL sets", 1_000_000, || {
        black_box(black_box(&ya).compare(black_box(&yb)).ok());
    });
    time("count MySQL transactions missing", 1_000_000, || {
        black_box(black_box(&ya).count_missing_from(black_box(&yb)).ok());
    });
}
