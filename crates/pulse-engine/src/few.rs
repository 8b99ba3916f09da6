//! [`Few`]: a short list held inline, in a fixed-capacity array, for the lists the hot path
//! builds per event (a customer's session spans being merged, the churn drivers of a score):
//! a `Vec` there would cost a heap allocation each time. It imports nothing of the engine, so
//! every floor may use it.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// Up to `N` values, in order, without a heap allocation. A full list takes a new value by
/// dropping its first one: the lists it holds are oldest first and bounded by their owner, and
/// dropping the oldest is what the owner does with what is beyond its bound anyway.
#[derive(Clone, Copy)]
pub struct Few<T: Copy + Default, const N: usize> {
    len: usize,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Self {
            len: 0,
            items: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Few<T, N> {
    /// The values of `items`; beyond `N` of them, the last `N`.
    pub fn from_slice(items: &[T]) -> Self {
        let mut few = Self::default();
        let kept = &items[items.len().saturating_sub(N)..];
        few.items[..kept.len()].copy_from_slice(kept);
        few.len = kept.len();
        few
    }

    /// Appends `value`; a full list drops its first value to make room.
    pub fn push(&mut self, value: T) {
        if N == 0 {
            return;
        }
        if self.len == N {
            self.items.copy_within(1.., 0);
            self.len -= 1;
        }
        self.items[self.len] = value;
        self.len += 1;
    }

    pub fn pop(&mut self) -> Option<T> {
        self.len = self.len.checked_sub(1)?;
        Some(self.items[self.len])
    }

    /// Removes and returns the value at `i`, shifting the ones after it down.
    ///
    /// # Panics
    /// If `i` is out of bounds, as `Vec::remove` does.
    pub fn remove(&mut self, i: usize) -> T {
        let value = self[i];
        self.items.copy_within(i + 1..self.len, i);
        self.len -= 1;
        value
    }
}

impl<T: Copy + Default, const N: usize> Deref for Few<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items[..self.len]
    }
}

impl<T: Copy + Default, const N: usize> DerefMut for Few<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }
}

impl<T: Copy + Default + fmt::Debug, const N: usize> fmt::Debug for Few<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for Few<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default, const N: usize> FromIterator<T> for Few<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut few = Self::default();
        iter.into_iter().for_each(|v| few.push(v));
        few
    }
}

impl<'a, T: Copy + Default, const N: usize> IntoIterator for &'a Few<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_values_in_order_and_drops_the_first_when_full() {
        let mut f: Few<u8, 3> = [1, 2].into_iter().collect();
        f.push(3);
        assert_eq!(&f[..], &[1, 2, 3]);
        f.push(4);
        assert_eq!(&f[..], &[2, 3, 4]);
        assert_eq!(f.remove(1), 3);
        assert_eq!(&f[..], &[2, 4]);
        assert_eq!(f.pop(), Some(4));
        assert_eq!(f.pop(), Some(2));
        assert_eq!(f.pop(), None);
        assert_eq!(&Few::<u8, 2>::from_slice(&[1, 2, 3])[..], &[2, 3]);
        f.push(5);
        f.sort_by_key(|v| std::cmp::Reverse(*v));
        assert_eq!(f, Few::from_slice(&[5]));
    }
}
