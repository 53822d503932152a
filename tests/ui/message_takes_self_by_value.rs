use understudy::prelude::*;

#[derive(Actor)]
struct A;

#[messages]
impl A {
    #[message]
    fn consume(self) {}
}

fn main() {}
