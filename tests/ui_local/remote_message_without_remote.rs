// A local-only build (no `cluster`/`remote` feature) has no remote messages: the derive says
// which feature to enable, in one error.
use understudy::prelude::*;

#[derive(serde::Serialize, serde::Deserialize, RemoteMessage)]
struct Order {
    id: u64,
}

fn main() {
    let _ = Order { id: 1 }.id;
}
