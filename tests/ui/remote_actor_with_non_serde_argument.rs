use understudy::prelude::*;

struct NotSerde;

#[derive(Actor)]
struct A;

#[messages(remote)]
impl A {
    #[message]
    fn take(&mut self, x: NotSerde) {
        let _ = x;
    }
}

fn main() {}
