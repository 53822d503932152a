// A local-only build (no `cluster`/`remote` feature): `#[messages(remote)]` says which feature
// to enable, in one error; the rest of the actor still compiles.
use understudy::prelude::*;

#[derive(Actor)]
struct Counter {
    n: u64,
}

#[messages(remote)]
impl Counter {
    #[message]
    fn get(&self) -> u64 {
        self.n
    }
}

fn main() {}
