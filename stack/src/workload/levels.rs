//! The ready queue of a priority scheduler: one FIFO per priority level and a bitmap of
//! the non-empty levels, so the highest ready task is found in a few word operations
//! whatever the number of tasks.

use std::collections::VecDeque;

/// Items by priority (0–255), first in first out within a level.
#[derive(Debug)]
pub struct Levels<T> {
    levels: Vec<VecDeque<T>>,
    bits: [u64; 4],
    len: usize,
}

impl<T> Default for Levels<T> {
    fn default() -> Self {
        Levels {
            levels: (0..256).map(|_| VecDeque::new()).collect(),
            bits: [0; 4],
            len: 0,
        }
    }
}

impl<T> Levels<T> {
    /// Queues `item` at `priority`, behind what is already there.
    pub fn push(&mut self, priority: u8, item: T) {
        let p = usize::from(priority);
        self.levels[p].push_back(item);
        self.bits[p / 64] |= 1 << (p % 64);
        self.len += 1;
    }

    /// The highest level with an item.
    pub fn highest(&self) -> Option<u8> {
        (0..4).rev().find_map(|w| {
            let word = self.bits[w];
            (word != 0).then(|| (w * 64 + 63 - word.leading_zeros() as usize) as u8)
        })
    }

    /// Takes the first item of the highest level, with its level.
    pub fn pop(&mut self) -> Option<(u8, T)> {
        let p = self.highest()?;
        let level = &mut self.levels[usize::from(p)];
        let item = level.pop_front()?;
        if level.is_empty() {
            self.bits[usize::from(p) / 64] &= !(1 << (usize::from(p) % 64));
        }
        self.len -= 1;
        Some((p, item))
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every item queued.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.levels.iter().flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn highest_first_fifo_within_a_level() {
        let mut q = Levels::default();
        assert_eq!(q.pop(), None);
        for (p, x) in [
            (100, 'a'),
            (150, 'b'),
            (100, 'c'),
            (0, 'd'),
            (255, 'e'),
            (63, 'f'),
        ] {
            q.push(p, x);
        }
        assert_eq!(q.len(), 6);
        assert_eq!(q.highest(), Some(255));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [
                (255, 'e'),
                (150, 'b'),
                (100, 'a'),
                (100, 'c'),
                (63, 'f'),
                (0, 'd')
            ]
        );
        assert!(q.is_empty() && q.highest().is_none());
    }

    #[test]
    fn every_level_and_word_boundary() {
        let mut q = Levels::default();
        for p in 0..=255u8 {
            q.push(p, p);
        }
        let all: Vec<_> = q.iter().copied().collect();
        assert_eq!(all, (0..=255).collect::<Vec<u8>>());
        for want in (0..=255u8).rev() {
            assert_eq!(q.pop(), Some((want, want)));
        }
        assert_eq!(q.pop(), None);
    }
}
