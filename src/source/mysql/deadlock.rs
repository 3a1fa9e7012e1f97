//! InnoDB's latest detected deadlock, as obshell's deadlocks endpoint answers it.
//! InnoDB keeps no history: `SHOW ENGINE INNODB STATUS` shows the last deadlock it
//! resolved (since the server started), and this is it, parsed: one event, whose
//! nodes are its transactions, the victim the one InnoDB rolled back.

use crate::api::{DeadLock, DeadLockNode};

/// The latest deadlock of an InnoDB status text, its time as the server wrote it
/// (`YYYY-MM-DD HH:MM:SS`, the server's local time); None when there was none since
/// the server started.
pub fn latest(status: &str) -> Option<(String, DeadLock)> {
    let mut lines = status
        .lines()
        .skip_while(|line| line.trim() != "LATEST DETECTED DEADLOCK")
        .skip(1)
        .skip_while(|line| line.starts_with("---"));
    let reported = lines.next()?.get(..19)?.to_string();
    let mut nodes: Vec<DeadLockNode> = Vec::new();
    let mut victim = None;
    // Where the lines being read belong in the current transaction.
    #[derive(PartialEq)]
    enum In {
        Header,
        Statement,
        Waiting,
        Other,
    }
    let mut place = In::Other;
    for line in lines {
        if line.starts_with("---") {
            break;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("*** (") {
            if let Some((n, what)) = rest.split_once(')') {
                if what.trim() == "TRANSACTION:" {
                    nodes.push(DeadLockNode {
                        idx: n.parse().unwrap_or(nodes.len() as i64 + 1),
                        ..DeadLockNode::default()
                    });
                    place = In::Header;
                    continue;
                }
                // MySQL 8 numbers each part: `*** (1) WAITING FOR THIS LOCK TO BE GRANTED:`.
                place = if what.contains("WAITING FOR THIS LOCK") {
                    In::Waiting
                } else {
                    In::Other
                };
                continue;
            }
        }
        if let Some(rest) = trimmed.strip_prefix("*** WE ROLL BACK TRANSACTION (") {
            victim = rest.split(')').next().and_then(|n| n.parse::<i64>().ok());
            place = In::Other;
            continue;
        }
        if trimmed.starts_with("***") {
            place = if trimmed.contains("WAITING FOR THIS LOCK") {
                In::Waiting
            } else {
                In::Other
            };
            continue;
        }
        let Some(node) = nodes.last_mut() else {
            continue;
        };
        match place {
            In::Header => {
                if let Some(rest) = trimmed.strip_prefix("TRANSACTION ") {
                    node.transaction_hash = rest.split(',').next().unwrap_or_default().to_string();
                } else if trimmed.contains(" thread id ") {
                    // The statement follows the thread's line.
                    place = In::Statement;
                }
            }
            In::Statement => {
                if !node.sql.is_empty() {
                    node.sql.push('\n');
                }
                node.sql.push_str(line);
            }
            In::Waiting => {
                if node.resource.is_empty() {
                    node.resource = resource_of(trimmed);
                }
            }
            In::Other => {}
        }
    }
    if nodes.is_empty() {
        return None;
    }
    for node in &mut nodes {
        node.roll_backed = victim == Some(node.idx);
        node.sql = node.sql.trim().to_string();
    }
    let mut ids: Vec<&str> = nodes.iter().map(|n| n.transaction_hash.as_str()).collect();
    ids.sort_unstable();
    let event = DeadLock {
        event_id: ids.join("-"),
        report_time: String::new(),
        size: nodes.len() as i64,
        nodes,
    };
    Some((reported, event))
}

/// What a lock line waits for: `index PRIMARY of table `db`.`t`` of a record lock,
/// `table `db`.`t`` of a table lock; the line itself otherwise.
fn resource_of(line: &str) -> String {
    if let Some(at) = line.find("index ") {
        let rest = &line[at..];
        return rest[..rest.find(" trx id").unwrap_or(rest.len())].to_string();
    }
    if let Some(rest) = line.strip_prefix("TABLE LOCK ") {
        return rest[..rest.find(" trx id").unwrap_or(rest.len())].to_string();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB 10.11's text, from the test server after a real deadlock.
    const MARIADB: &str = "=====================================
------------------------
LATEST FOREIGN KEY ERROR
------------------------
------------------------
LATEST DETECTED DEADLOCK
------------------------
2026-12-04 19:44:21 0x7f4d000886c0
*** (1) TRANSACTION:
TRANSACTION 366, ACTIVE 0 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s), undo log entries 1
MariaDB thread id 233, OS thread handle 139968689768128, query id 1305 127.0.0.60 it_m_lim Updating
UPDATE it_m_limdb.d SET v = 0 WHERE id = 1
*** WAITING FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 6 page no 3 n bits 320 index PRIMARY of table `it_m_limdb`.`d` trx id 366 lock_mode X locks rec but not gap waiting
Record lock, heap no 2 PHYSICAL RECORD: n_fields 4; compact format; info bits 0
 0: len 4; hex 80000001; asc     ;;

*** CONFLICTING WITH:
RECORD LOCKS space id 6 page no 3 n bits 320 index PRIMARY of table `it_m_limdb`.`d` trx id 365 lock_mode X locks rec but not gap

*** (2) TRANSACTION:
TRANSACTION 365, ACTIVE 0 sec starting index read
mysql tables in use 1, locked 1
LOCK WAIT 3 lock struct(s), heap size 1128, 2 row lock(s), undo log entries 1
MariaDB thread id 232, OS thread handle 139968690382528, query id 1299 127.0.0.60 it_m_lim Updating
UPDATE it_m_limdb.d
  SET v = 0 WHERE id = 2
*** WAITING FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 6 page no 3 n bits 320 index PRIMARY of table `it_m_limdb`.`d` trx id 365 lock_mode X locks rec but not gap waiting

*** CONFLICTING WITH:
RECORD LOCKS space id 6 page no 3 n bits 320 index PRIMARY of table `it_m_limdb`.`d` trx id 366 lock_mode X locks rec but not gap

*** WE ROLL BACK TRANSACTION (1)
------------
TRANSACTIONS
------------
Trx id counter 371
";

    #[test]
    fn mariadb_s_latest_deadlock_is_one_event() {
        let (reported, event) = latest(MARIADB).unwrap();
        assert_eq!(reported, "2026-12-04 19:44:21");
        assert_eq!((event.event_id.as_str(), event.size), ("365-366", 2));
        let [first, second] = &event.nodes[..] else {
            panic!("{event:?}");
        };
        assert_eq!(
            first,
            &DeadLockNode {
                idx: 1,
                transaction_hash: "366".into(),
                roll_backed: true,
                resource: "index PRIMARY of table `it_m_limdb`.`d`".into(),
                sql: "UPDATE it_m_limdb.d SET v = 0 WHERE id = 1".into(),
                ..DeadLockNode::default()
            }
        );
        assert_eq!(second.sql, "UPDATE it_m_limdb.d\n  SET v = 0 WHERE id = 2");
        assert!(!second.roll_backed);
    }

    /// MySQL 8 numbers every part of a transaction, and lists what it holds first.
    #[test]
    fn mysql_8_s_numbered_parts_are_read_too() {
        let status = "LATEST DETECTED DEADLOCK
------------------------
2026-12-04 10:00:00 140231842940672
*** (1) TRANSACTION:
TRANSACTION 2071, ACTIVE 5 sec starting index read
MySQL thread id 9, OS thread handle 1402, query id 50 localhost root updating
UPDATE t SET v = 1 WHERE id = 2
*** (1) HOLDS THE LOCK(S):
RECORD LOCKS space id 2 page no 4 n bits 72 index PRIMARY of table `db`.`t` trx id 2071 lock_mode X locks rec but not gap
*** (1) WAITING FOR THIS LOCK TO BE GRANTED:
TABLE LOCK table `db`.`u` trx id 2071 lock mode IX waiting
*** (2) TRANSACTION:
TRANSACTION 2072, ACTIVE 3 sec starting index read
MySQL thread id 10, OS thread handle 1403, query id 51 localhost root updating
UPDATE t SET v = 1 WHERE id = 1
*** (2) HOLDS THE LOCK(S):
RECORD LOCKS space id 2 page no 4 n bits 72 index PRIMARY of table `db`.`t` trx id 2072 lock_mode X locks rec but not gap
*** (2) WAITING FOR THIS LOCK TO BE GRANTED:
RECORD LOCKS space id 2 page no 4 n bits 72 index PRIMARY of table `db`.`t` trx id 2072 lock_mode X locks rec but not gap waiting
*** WE ROLL BACK TRANSACTION (2)
------------
TRANSACTIONS
";
        let (reported, event) = latest(status).unwrap();
        assert_eq!(reported, "2026-12-04 10:00:00");
        assert_eq!(event.nodes[0].resource, "table `db`.`u`");
        assert_eq!(event.nodes[1].resource, "index PRIMARY of table `db`.`t`");
        assert_eq!(event.nodes[0].sql, "UPDATE t SET v = 1 WHERE id = 2");
        assert!(event.nodes[1].roll_backed && !event.nodes[0].roll_backed);
    }

    #[test]
    fn no_deadlock_since_the_start_is_none() {
        assert_eq!(latest("=====\nTRANSACTIONS\n------------\n"), None);
        assert_eq!(latest("LATEST DETECTED DEADLOCK\n---\n"), None);
        assert_eq!(latest(""), None);
    }
}
