//! Preparing the next batch while the current one is used: extraction decodes and crops
//! batch i+1 while the model embeds batch i, alignment decodes while the detector runs.

use std::sync::mpsc::sync_channel;

/// Runs `prepare` on each `batch`-sized chunk of `items` in a scoped thread and hands the
/// results to `consume` in order, one chunk ahead. `prepare` gets the chunk's start index.
/// The first error of either side stops both; an error of `prepare` reaches `consume`'s
/// caller only after every chunk before it was consumed (a resumable cache keeps them).
///
/// The preparing thread's parallel work runs on a pool as wide as the caller's current
/// rayon pool, so a `--threads` limit applies to it too.
pub fn pipelined<T, P, PE, E>(
    items: &[T],
    batch: usize,
    prepare: impl Fn(usize, &[T]) -> Result<P, PE> + Sync,
    mut consume: impl FnMut(P) -> Result<(), E>,
) -> Result<(), E>
where
    T: Sync,
    P: Send,
    PE: Send,
    E: From<PE>,
{
    let batch = batch.max(1);
    let threads = rayon::current_num_threads();
    std::thread::scope(|scope| {
        // Two batches in flight: one being prepared while the other is consumed.
        let (tx, rx) = sync_channel::<Result<P, PE>>(1);
        let prepare = &prepare;
        scope.spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok();
            for (b, chunk) in items.chunks(batch).enumerate() {
                let run = || prepare(b * batch, chunk);
                let r = match &pool {
                    Some(pool) => pool.install(run),
                    None => run(),
                };
                let failed = r.is_err();
                if tx.send(r).is_err() || failed {
                    return; // consumer stopped, or nothing after a failure
                }
            }
        });
        for prepared in rx {
            consume(prepared?)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_arrive_in_order_and_errors_after_the_chunks_before_them() {
        let items: Vec<u32> = (0..10).collect();
        let mut seen = Vec::new();
        let r: Result<(), String> = pipelined(
            &items,
            3,
            |start, chunk| if start == 6 { Err(format!("bad chunk at {start}")) } else { Ok(chunk.to_vec()) },
            |c| {
                seen.push(c);
                Ok(())
            },
        );
        assert_eq!(r, Err("bad chunk at 6".to_string()));
        assert_eq!(seen, vec![vec![0, 1, 2], vec![3, 4, 5]]);
        let mut n = 0;
        let stop: Result<(), String> = pipelined(
            &items,
            2,
            |_, c| Ok::<_, String>(c.len()),
            |k| {
                n += k;
                if n >= 4 {
                    Err("enough".into())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((stop, n), (Err("enough".into()), 4));
    }

    #[test]
    fn the_preparing_thread_gets_the_callers_pool_width() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let widths = pool.install(|| {
            let mut w = Vec::new();
            pipelined(
                &[1, 2],
                1,
                |_, _| Ok::<_, ()>(rayon::current_num_threads()),
                |n| {
                    w.push(n);
                    Ok::<_, ()>(())
                },
            )
            .unwrap();
            w
        });
        assert_eq!(widths, vec![3, 3]);
    }
}
