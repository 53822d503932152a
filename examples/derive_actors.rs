//! Typed actors from macros: tell, ask, timeouts, typed errors and Local names.
//!
//! Run: `cargo run --example derive_actors`

use std::time::Duration;

use understudy::prelude::*;

/// A bank account: its state is the struct, its messages are the `#[message]` methods.
#[derive(Actor)]
struct Account {
    owner: String,
    balance: i64,
}

#[messages]
impl Account {
    /// Puts money in (a tell: returns nothing, so the caller does not wait).
    #[message]
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
        println!(
            "  [{}] deposit {amount:>4} -> balance {}",
            self.owner, self.balance
        );
    }

    /// Takes money out if there is enough (an ask: the caller awaits the answer).
    #[message]
    fn withdraw(&mut self, amount: i64) -> Result<i64, String> {
        if amount > self.balance {
            return Err(format!("insufficient funds: {} < {amount}", self.balance));
        }
        self.balance -= amount;
        Ok(self.balance)
    }

    /// The balance.
    #[message]
    fn balance(&self) -> i64 {
        self.balance
    }

    /// An async handler: pretend to talk to a slow auditor.
    #[message]
    async fn audit(&self, delay_ms: u64) -> String {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        format!("{} holds {}", self.owner, self.balance)
    }

    /// Closes the account: the actor stops itself through its context.
    #[message]
    fn close(&mut self, ctx: &Ctx<Self>) -> i64 {
        println!("  [{}] closing with {}", self.owner, self.balance);
        ctx.stop(Some("closed".into()));
        std::mem::take(&mut self.balance)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = Runtime::new();
    println!("node {} is up\n", node.node_id());

    println!("1. Spawn an account under the Local name \"alice\" and tell it to deposit:");
    let alice = node
        .spawn_named(
            "alice",
            Account {
                owner: "alice".into(),
                balance: 0,
            },
        )
        .await?;
    alice.deposit(100)?;
    alice.deposit(50)?;

    println!("\n2. Ask it things. Tells before an ask are handled first (mailbox order):");
    println!("  balance = {}", alice.balance().await?);
    println!("  withdraw 30  -> {:?}", alice.withdraw(30).await?);
    println!("  withdraw 500 -> {:?}", alice.withdraw(500).await?);

    println!("\n3. Anyone on this node can find her by name:");
    let found = node.whereis::<AccountMsg>("alice").expect("registered");
    println!(
        "  whereis(\"alice\") = {:?}, balance {}",
        found.get_id(),
        found.balance().await?
    );

    println!("\n4. An ask waits 5 s by default; give a slow one a shorter timeout:");
    match alice.audit(2_000).timeout(Duration::from_millis(50)).await {
        Err(AskError::Timeout(d)) => {
            println!("  audit gave up after {d:?} (the actor is still busy)")
        }
        other => println!("  unexpected: {other:?}"),
    }
    println!(
        "  with enough time: {}",
        alice.audit(10).timeout(Duration::from_secs(5)).await?
    );

    println!("\n5. Close the account; then the typed errors say what happened:");
    println!("  close -> paid out {}", alice.close().await?);
    alice.wait(None).await?;
    println!("  deposit after close -> {:?}", alice.deposit(1));
    println!("  balance after close -> {:?}", alice.balance().await);
    println!(
        "  whereis(\"alice\")    -> {:?}",
        node.whereis::<AccountMsg>("alice").map(|a| a.get_id())
    );

    println!("\n6. The name is free again for a new account:");
    let again = node
        .spawn_named(
            "alice",
            Account {
                owner: "alice (new)".into(),
                balance: 0,
            },
        )
        .await?;
    again.deposit(1)?;
    println!("  new alice balance = {}", again.balance().await?);
    Ok(())
}
