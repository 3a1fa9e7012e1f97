//! Holds database sessions open for benchmarks: N connections, the first M of them
//! busy in `SELECT SLEEP`. Prints `ready` once all are open and keeps them until its
//! standard input closes (the orchestrator ends it by closing the pipe).
//!
//!     cargo run --release --example hold_sessions -- 127.0.0.1:33306 user password 500 100

use mysql::prelude::Queryable;
use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, user, password, total, busy] = &args[..] else {
        return Err("usage: hold_sessions ADDR USER PASSWORD TOTAL BUSY".into());
    };
    let (host, port) = addr.rsplit_once(':').ok_or("ADDR is host:port")?;
    let (total, busy): (usize, usize) = (total.parse()?, busy.parse()?);
    let opts: mysql::Opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port.parse()?)
        .user(Some(user.as_str()))
        .pass(Some(password.as_str()))
        .prefer_socket(false)
        .into();
    let mut idle = Vec::new();
    let mut sleepers = Vec::new();
    for i in 0..total {
        let mut conn = mysql::Conn::new(opts.clone())?;
        if i < busy {
            sleepers.push(std::thread::spawn(move || {
                let _ = conn.query_drop("SELECT SLEEP(3600)");
            }));
        } else {
            idle.push(conn);
        }
    }
    println!("ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    // The sleepers are killed with the process; their server sessions end with it.
    std::process::exit(0);
}
