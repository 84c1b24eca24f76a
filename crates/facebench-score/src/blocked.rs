//! Blocked query x gallery scoring that streams score tiles into reducers.
//!
//! The `m x n` score matrix never exists: the (query block x gallery block) grid of tiles is
//! walked in parallel with rayon, each tile is computed by [`gemm_block`] into a per-worker
//! buffer and handed at once to that worker's partial [`Reducer`]; partial reducers are merged
//! at the end. Reducers merge exactly (integer counts, top-k under a total order), and every
//! score has a tiling-independent value (see [`crate::kernel`]), so the result is bit-identical
//! for any thread count and any block sizes.
//!
//! Several reducers can share one pass over the tiles: a tuple `(A, B, ...)` or a `Vec<R>` is
//! itself a reducer, and [`Masked`] restricts a reducer to a gallery index range and/or
//! excluded gallery columns (e.g. one MegaFace distractor set of a given size inside a gallery
//! that concatenates all sets, minus the noise list).

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::kernel::gemm_block;
use crate::matrix::{Matrix, ScoreError};

/// One block of scores handed to a reducer: rows are queries `q0 .. q0 + rows`, columns are
/// gallery items `g0 .. g0 + cols` (absolute indices).
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    q0: usize,
    g0: usize,
    rows: usize,
    cols: usize,
    stride: usize,
    scores: &'a [f32],
    excluded: Option<&'a [bool]>,
}

impl<'a> Tile<'a> {
    /// A tile over `scores`, row-major `rows x cols` with no excluded column.
    /// Panics if `scores.len() != rows * cols` (reducer tests build tiles by hand).
    pub fn new(q0: usize, g0: usize, rows: usize, cols: usize, scores: &'a [f32]) -> Self {
        assert_eq!(scores.len(), rows * cols, "Tile::new: scores must hold rows * cols values");
        Tile { q0, g0, rows, cols, stride: cols, scores, excluded: None }
    }

    /// First query index.
    pub fn q0(&self) -> usize {
        self.q0
    }
    /// First gallery index.
    pub fn g0(&self) -> usize {
        self.g0
    }
    /// Number of queries in the tile.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of gallery columns in the tile.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Scores of query `q0 + i` against gallery `g0 .. g0 + cols`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.scores[i * self.stride..i * self.stride + self.cols]
    }
    /// Per column: `true` when that gallery item must be ignored; `None` when none is.
    pub fn excluded(&self) -> Option<&'a [bool]> {
        self.excluded
    }
}

/// A streaming consumer of score tiles with an exact merge.
///
/// `score_blocked` forks one empty partial per rayon work item from the reducer it is given,
/// feeds each partial tiles in some order, then merges all partials back into the original.
/// For results that do not depend on threads or block sizes, `consume` followed by `merge`
/// must give the same state whatever the grouping and order of tiles (true for counts and for
/// top-k under a total order). `Sync` because every worker forks from the same shared
/// reducer.
pub trait Reducer: Send + Sync + Sized {
    /// An empty partial with the same parameters (k, thresholds, bins, mask, ...).
    fn fork(&self) -> Self;
    /// Folds one tile of scores into this partial. Must honour [`Tile::excluded`].
    fn consume(&mut self, tile: &Tile<'_>);
    /// Adds the state of `other` (a fork of the same reducer) into `self`.
    fn merge(&mut self, other: Self);
    /// Checks that the reducer fits a problem with `queries` queries and `gallery` gallery
    /// items, so that a mismatch is an error before any work instead of a panic mid-way.
    fn check(&self, queries: usize, gallery: usize) -> Result<(), ScoreError> {
        let _ = (queries, gallery);
        Ok(())
    }
}

/// Tile sizes of blocked scoring. Any sizes give the same results; they only change speed and
/// memory (one `query_block x gallery_block` f32 buffer per rayon work item).
///
/// The sizes are upper bounds: when the tile grid would give fewer than 4 tiles per thread,
/// [`score_blocked`] halves the larger block size (not below 64) until it does, so a small
/// problem still uses every thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// Queries per tile.
    pub query_block: usize,
    /// Gallery items per tile.
    pub gallery_block: usize,
}

impl Default for BlockConfig {
    /// 2048 queries x 512 gallery items (a 4 MiB tile), chosen with `bench` on a 2-core AVX-512
    /// machine at 4096 x 50,000..200,000 x 512: tiles with many queries let `gemm` reuse each
    /// packed gallery panel, and the tile is still small enough to be reduced from cache.
    fn default() -> Self {
        BlockConfig { query_block: 2048, gallery_block: 512 }
    }
}

impl BlockConfig {
    /// The block sizes actually used for `m` queries, `n` gallery items and `threads` threads
    /// (see the type's docs).
    pub fn effective(&self, m: usize, n: usize, threads: usize) -> BlockConfig {
        const FLOOR: usize = 64;
        let mut qb = self.query_block.min(m.max(1));
        let mut gb = self.gallery_block.min(n.max(1));
        let want = 4 * threads.max(1);
        while m.div_ceil(qb) * n.div_ceil(gb) < want {
            if qb >= gb && qb > FLOOR {
                qb = qb.div_ceil(2);
            } else if gb > FLOOR {
                gb = gb.div_ceil(2);
            } else if qb > FLOOR {
                qb = qb.div_ceil(2);
            } else {
                break;
            }
        }
        BlockConfig { query_block: qb, gallery_block: gb }
    }
}

/// Scores every query row against every gallery row, feeding tiles to `reducer`; returns the
/// reducer with all tiles merged in. Runs on the current rayon pool (use
/// `ThreadPool::install` to choose the thread count).
///
/// Tiles are visited gallery-block-major, so consecutive tiles of one worker reuse the same
/// gallery block while the (small) query matrix stays in cache.
pub fn score_blocked<R: Reducer>(
    queries: Matrix<'_>,
    gallery: Matrix<'_>,
    config: BlockConfig,
    reducer: R,
) -> Result<R, ScoreError> {
    if queries.dim() != gallery.dim() {
        return Err(ScoreError::DimMismatch { left: queries.dim(), right: gallery.dim() });
    }
    if config.query_block == 0 || config.gallery_block == 0 {
        return Err(ScoreError::ZeroBlock { query_block: config.query_block, gallery_block: config.gallery_block });
    }
    let (m, n) = (queries.rows(), gallery.rows());
    let BlockConfig { query_block: qb, gallery_block: gb } = config.effective(m, n, rayon::current_num_threads());
    reducer.check(m, n)?;
    Ok(drive_tiles(m, n, qb, gb, reducer, |q0, rows, g0, cols, out| {
        gemm_block(queries.slice_rows(q0..q0 + rows), gallery.slice_rows(g0..g0 + cols), out)
            .expect("tile shapes are consistent by construction")
    }))
}

/// The tile loop every scoring kernel shares: the `m x n` score matrix cut into
/// `qb x gb` tiles, visited gallery-block-major in parallel, each tile filled by
/// `kernel(q0, rows, g0, cols, out)` (row-major `rows x cols`) and consumed by a fork of
/// `reducer`, the forks merged at the end. Block sizes are taken as given (non-zero).
pub fn drive_tiles<R, K>(m: usize, n: usize, qb: usize, gb: usize, reducer: R, kernel: K) -> R
where
    R: Reducer,
    K: Fn(usize, usize, usize, usize, &mut [f32]) + Sync,
{
    let nqb = m.div_ceil(qb);
    let tiles = nqb * n.div_ceil(gb);
    let partial = (0..tiles)
        .into_par_iter()
        .fold(
            || (reducer.fork(), Vec::<f32>::new()),
            |(mut part, mut buf), t| {
                let (q0, g0) = ((t % nqb) * qb, (t / nqb) * gb);
                let (rows, cols) = (qb.min(m - q0), gb.min(n - g0));
                buf.resize(rows * cols, 0.0);
                let out = &mut buf[..rows * cols];
                kernel(q0, rows, g0, cols, out);
                part.consume(&Tile::new(q0, g0, rows, cols, out));
                (part, buf)
            },
        )
        .map(|(part, _)| part)
        .reduce_with(|mut a, b| {
            a.merge(b);
            a
        });
    let mut reducer = reducer;
    if let Some(part) = partial {
        reducer.merge(part);
    }
    reducer
}

macro_rules! tuple_reducer {
    ($($name:ident $idx:tt),+) => {
        /// Runs every member reducer over the same tiles.
        impl<$($name: Reducer),+> Reducer for ($($name,)+) {
            fn fork(&self) -> Self {
                ($(self.$idx.fork(),)+)
            }
            fn consume(&mut self, tile: &Tile<'_>) {
                $(self.$idx.consume(tile);)+
            }
            fn merge(&mut self, other: Self) {
                $(self.$idx.merge(other.$idx);)+
            }
            fn check(&self, queries: usize, gallery: usize) -> Result<(), ScoreError> {
                $(self.$idx.check(queries, gallery)?;)+
                Ok(())
            }
        }
    };
}
tuple_reducer!(A 0);
tuple_reducer!(A 0, B 1);
tuple_reducer!(A 0, B 1, C 2);
tuple_reducer!(A 0, B 1, C 2, D 3);
tuple_reducer!(A 0, B 1, C 2, D 3, E 4);
tuple_reducer!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Runs every reducer of the vector over the same tiles (e.g. one per distractor-set size).
impl<R: Reducer> Reducer for Vec<R> {
    fn fork(&self) -> Self {
        self.iter().map(Reducer::fork).collect()
    }
    fn consume(&mut self, tile: &Tile<'_>) {
        for r in self.iter_mut() {
            r.consume(tile);
        }
    }
    fn merge(&mut self, other: Self) {
        assert_eq!(self.len(), other.len(), "merging reducer vectors of different lengths");
        for (a, b) in self.iter_mut().zip(other) {
            a.merge(b);
        }
    }
    fn check(&self, queries: usize, gallery: usize) -> Result<(), ScoreError> {
        self.iter().try_for_each(|r| r.check(queries, gallery))
    }
}

/// Which gallery columns a [`Masked`] reducer sees.
#[derive(Debug, Clone, Default)]
pub struct GalleryMask {
    range: Option<Range<usize>>,
    excluded: Option<Arc<[bool]>>,
}

impl GalleryMask {
    /// Every gallery column.
    pub fn all() -> Self {
        GalleryMask::default()
    }
    /// Only gallery indices in `range` (e.g. one distractor set inside a concatenated gallery).
    pub fn range(range: Range<usize>) -> Self {
        GalleryMask { range: Some(range), excluded: None }
    }
    /// Additionally ignores gallery index `g` wherever `excluded[g]` is true; `excluded` must
    /// have one entry per gallery row.
    pub fn with_excluded(mut self, excluded: Arc<[bool]>) -> Self {
        self.excluded = Some(excluded);
        self
    }
}

/// Restricts a reducer to the gallery columns of a [`GalleryMask`]: the inner reducer only
/// sees the in-range part of each tile (gallery indices stay absolute) with excluded columns
/// flagged in [`Tile::excluded`].
#[derive(Debug, Clone)]
pub struct Masked<R> {
    inner: R,
    mask: GalleryMask,
    scratch: Vec<bool>,
}

impl<R: Reducer> Masked<R> {
    /// Wraps `inner` so that it only sees the columns `mask` lets through.
    pub fn new(inner: R, mask: GalleryMask) -> Self {
        Masked { inner, mask, scratch: Vec::new() }
    }
    /// The wrapped reducer (with its results).
    pub fn into_inner(self) -> R {
        self.inner
    }
    /// The wrapped reducer, borrowed.
    pub fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: Reducer> Reducer for Masked<R> {
    fn fork(&self) -> Self {
        Masked { inner: self.inner.fork(), mask: self.mask.clone(), scratch: Vec::new() }
    }

    fn consume(&mut self, tile: &Tile<'_>) {
        let (mut lo, mut hi) = (tile.g0, tile.g0 + tile.cols);
        if let Some(r) = &self.mask.range {
            lo = lo.max(r.start);
            hi = hi.min(r.end);
        }
        if lo >= hi {
            return;
        }
        let (c0, cols) = (lo - tile.g0, hi - lo);
        let excluded = match (&self.mask.excluded, tile.excluded) {
            (None, outer) => outer.map(|e| &e[c0..c0 + cols]),
            (Some(mine), None) => Some(&mine[lo..hi]),
            (Some(mine), Some(outer)) => {
                self.scratch.clear();
                self.scratch.extend(mine[lo..hi].iter().zip(&outer[c0..c0 + cols]).map(|(a, b)| *a || *b));
                Some(&self.scratch[..])
            }
        };
        let sub = Tile {
            q0: tile.q0,
            g0: lo,
            rows: tile.rows,
            cols,
            stride: tile.stride,
            scores: if tile.rows == 0 { &[] } else { &tile.scores[c0..] },
            excluded,
        };
        self.inner.consume(&sub);
    }

    fn merge(&mut self, other: Self) {
        self.inner.merge(other.inner);
    }

    fn check(&self, queries: usize, gallery: usize) -> Result<(), ScoreError> {
        if let Some(r) = &self.mask.range {
            if r.start > r.end || r.end > gallery {
                return Err(ScoreError::ReducerShape(format!(
                    "gallery mask range {}..{} does not fit a gallery of {gallery} rows",
                    r.start, r.end
                )));
            }
        }
        if let Some(e) = &self.mask.excluded {
            if e.len() != gallery {
                return Err(ScoreError::ReducerShape(format!(
                    "gallery exclusion list has {} entries, gallery has {gallery} rows",
                    e.len()
                )));
            }
        }
        self.inner.check(queries, gallery)
    }
}

#[cfg(test)]
mod tests {
    use super::BlockConfig;

    #[test]
    fn effective_blocks_split_small_problems_but_keep_large_ones() {
        let cfg = BlockConfig { query_block: 2048, gallery_block: 512 };
        // Big problem: unchanged.
        assert_eq!(cfg.effective(4096, 200_000, 16), cfg);
        // Blocks never exceed the problem.
        assert_eq!(cfg.effective(10, 20, 1), BlockConfig { query_block: 10, gallery_block: 20 });
        // 3,530 x 1,000 on 8 threads: split until >= 32 tiles, never below 64.
        let e = cfg.effective(3530, 1000, 8);
        assert!(3530usize.div_ceil(e.query_block) * 1000usize.div_ceil(e.gallery_block) >= 32, "{e:?}");
        assert!(e.query_block >= 64 && e.gallery_block >= 64, "{e:?}");
        // User blocks below the floor are kept as given.
        let tiny = BlockConfig { query_block: 3, gallery_block: 5 };
        assert_eq!(tiny.effective(6, 10, 64), tiny);
    }
}
