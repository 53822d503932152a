use understudy::prelude::*;

#[derive(Actor)]
struct A;

trait Greet {
    fn hi(&self);
}

#[messages]
impl Greet for A {
    #[message]
    fn hi(&self) {}
}

fn main() {}
