//! What the raw-ractor and understudy counters share; compiled into both bench binaries
//! (`understudy-benches`, with ractor's `cluster`, and `understudy-benches-local`, without).

/// The message of the understudy and raw-ractor counters (24 bytes).
///
/// Its ractor `Message` impl comes from understudy's derive, which emits one only where ractor
/// has no blanket impl (with `cluster`): this file is built with and without it.
#[derive(understudy::Message)]
pub enum CounterMsg {
    Add(u64),
    Get(::ractor::RpcReplyPort<u64>),
}

/// A tokio multi-thread runtime with 2 workers (the same for every tokio-based framework).
/// The benchmark body is spawned as a task on it, so the sender is a worker task like the
/// actors, and everything shares the same two worker threads.
///
/// `current_thread` (the `--current-thread` diagnostic) uses a current-thread runtime
/// instead: no cross-thread wake-ups, so per-message costs (and instruction counts under
/// `valgrind`) are nearly deterministic. Not what the table reports.
pub fn run_tokio<T: Send + 'static>(
    current_thread: bool,
    body: impl Future<Output = T> + Send + 'static,
) -> T {
    let rt = if current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    rt.block_on(async move { tokio::spawn(body).await.expect("benchmark task panicked") })
}
