//! LFW's `people.txt` (View 2 people split): the fold count, then per fold a count line and
//! `name<TAB>images` lines. The folds are identity-disjoint, which is what makes training
//! on nine folds and testing on the tenth a fair experiment.

use std::path::Path;

use facebench_core::{Error, Result};

use crate::pairs::image_key;

/// One person of `people.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub images: u32,
    /// 0-based fold.
    pub fold: usize,
}

impl Person {
    /// Image keys `Name/Name_0001.jpg` .. of this person, in order.
    pub fn image_keys(&self) -> impl Iterator<Item = String> + '_ {
        (1..=self.images).map(|i| image_key(&self.name, i))
    }
}

/// Every person of a `people.txt`, with the number of folds it declares.
#[derive(Debug, Clone)]
pub struct People {
    pub people: Vec<Person>,
    pub n_folds: usize,
}

impl People {
    pub fn read(path: &Path) -> Result<People> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<People> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| !l.trim().is_empty());
        let count = |(n, l): (usize, &str), what: &str| -> Result<usize> {
            l.trim().parse().map_err(|_| Error::parse(path, n, format!("expected {what}, found {l:?}")))
        };
        let first = lines.next().ok_or_else(|| Error::format(path, "empty file"))?;
        let n_folds = count(first, "the number of folds")?;
        let mut people = Vec::new();
        for fold in 0..n_folds {
            let line = lines
                .next()
                .ok_or_else(|| Error::format(path, format!("ends before fold {} of {n_folds}", fold + 1)))?;
            let in_fold = count(line, "the number of people in the fold")?;
            for _ in 0..in_fold {
                let (n, l) = lines
                    .next()
                    .ok_or_else(|| Error::format(path, format!("fold {} has fewer than {in_fold} people", fold + 1)))?;
                let mut f = l.split_whitespace();
                let (Some(name), Some(images), None) = (f.next(), f.next(), f.next()) else {
                    return Err(Error::parse(path, n, format!("expected `name<TAB>images`, found {l:?}")));
                };
                let images: u32 = images
                    .parse()
                    .ok()
                    .filter(|&i| i > 0)
                    .ok_or_else(|| Error::parse(path, n, format!("bad image count {images:?}")))?;
                people.push(Person { name: name.to_string(), images, fold });
            }
        }
        if let Some((n, l)) = lines.next() {
            return Err(Error::parse(path, n, format!("text after the last fold: {l:?}")));
        }
        Ok(People { people, n_folds })
    }

    /// The `n` people with the most images (ties broken by name), most first.
    pub fn largest(&self, n: usize) -> Vec<&Person> {
        let mut v: Vec<&Person> = self.people.iter().collect();
        v.sort_by(|a, b| b.images.cmp(&a.images).then_with(|| a.name.cmp(&b.name)));
        v.truncate(n);
        v
    }

    /// Every image key of every person.
    pub fn image_keys(&self) -> Vec<String> {
        self.people.iter().flat_map(|p| p.image_keys()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folds_and_rejects_bad_lines() {
        let p = Path::new("people.txt");
        let ok = People::parse("2\n2\nA_B\t3\nC\t1\n1\nD\t2\n", p).unwrap();
        assert_eq!(ok.n_folds, 2);
        assert_eq!(ok.people.len(), 3);
        assert_eq!(ok.people[2], Person { name: "D".into(), images: 2, fold: 1 });
        assert_eq!(ok.largest(1)[0].name, "A_B");
        assert_eq!(ok.image_keys()[0], "A_B/A_B_0001.jpg");
        let e = People::parse("2\n1\nA\t1\n1\nB\tx\n", p).unwrap_err().to_string();
        assert!(e.contains("people.txt:5") && e.contains("bad image count"), "{e}");
        let e = People::parse("2\n2\nA\t1\n", p).unwrap_err().to_string();
        assert!(e.contains("fewer than 2"), "{e}");
        let e = People::parse("1\n1\nA\t1\nB\t1\n", p).unwrap_err().to_string();
        assert!(e.contains("people.txt:4") && e.contains("after the last fold"), "{e}");
    }

    #[test]
    fn real_people_file_covers_all_of_lfw() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let data =
            std::env::var_os("FACEBENCH_DATA").map(std::path::PathBuf::from).unwrap_or(root.join("../shared/data"));
        let p = People::read(&data.join("lfw/people.txt")).unwrap();
        assert_eq!((p.n_folds, p.people.len(), p.image_keys().len()), (10, 5749, 13233));
        let top: Vec<(&str, u32)> = p.largest(2).iter().map(|q| (q.name.as_str(), q.images)).collect();
        assert_eq!(top, [("George_W_Bush", 530), ("Colin_Powell", 236)]);
        // Folds are identity-disjoint.
        let names: std::collections::HashSet<&str> = p.people.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names.len(), p.people.len());
    }
}
