//! Runtime lists (`list NAME: TYPE`): their members, built once per list version and
//! shared by every evaluation that reads that version, and the per-evaluation view the
//! engines query through `weir.list_contains` (docs/abi.md, "Runtime lists").
//!
//! A list's members are never copied into an evaluation. String members stay text: a
//! guest asks about an interned id, which the evaluation's interner resolves to the
//! text it stands for, so a 100,000-member blocklist costs an order one hash lookup per
//! membership test rather than 100,000 interned strings. Every member a test finds is
//! recorded ([`Lists::found`]): a decision record keeps those instead of the lists, and
//! replaying it with only those members gives the same answers (a test of any other
//! value was false and stays false).

use crate::abi::{scalar_word, Interner};
use crate::interp::HostLists;
use serde_json::Value as Json;
use std::cell::RefCell;
use std::sync::Arc;
use weir_dsl::checked::Value;

/// The members of one runtime list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListMembers {
    /// Members of a `string` list, as text.
    strings: foldhash::HashSet<Box<str>>,
    /// Members of any other scalar list, as the machine word the ABI encodes them as,
    /// with the JSON they were read from (`None` for members that came as checked values,
    /// from a test block).
    words: foldhash::HashMap<i64, Option<Json>>,
}

/// A member a membership test found, as a decision record names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FoundMember {
    Text(String),
    /// A non-string member's machine word (see [`ListMembers::json_of`]).
    Word(i64),
}

impl ListMembers {
    /// Members from checked values (a test block's `list NAME = [...]`). Values that
    /// cannot be list members (records, lists) are left out: the checker rejects them.
    pub fn from_values(values: &[Value]) -> ListMembers {
        let mut members = ListMembers::default();
        for value in values {
            members.insert(value, None);
        }
        members
    }

    /// The members of a `string` list, from their text.
    pub fn from_strings<'a>(members: impl IntoIterator<Item = &'a str>) -> ListMembers {
        ListMembers {
            strings: members.into_iter().map(Box::from).collect(),
            words: Default::default(),
        }
    }

    /// Adds a member, with the JSON it was read from.
    pub(crate) fn insert(&mut self, value: &Value, json: Option<&Json>) {
        if let Value::String(s) = value {
            self.strings.insert(s.as_str().into());
        } else if let Some(word) = scalar_word(value) {
            self.words.insert(word, json.cloned());
        }
    }

    pub fn len(&self) -> usize {
        self.strings.len() + self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `word` (an interned id for a string list) is a member, and which.
    fn find(&self, word: i64, interner: &Interner) -> Option<FoundMember> {
        if self.words.contains_key(&word) {
            return Some(FoundMember::Word(word));
        }
        // A list has one element type, so at most one of the two sets is non-empty; an
        // int list never resolves its words as string ids.
        if self.strings.is_empty() {
            return None;
        }
        let text = interner.resolve(word)?;
        self.strings
            .contains(text)
            .then(|| FoundMember::Text(text.to_string()))
    }

    /// The JSON a found member is written as in a facts document: the text of a string
    /// member, the JSON a word member was read from (its bare word when it came from a
    /// test block).
    pub fn json_of(&self, member: &FoundMember) -> Json {
        match member {
            FoundMember::Text(text) => Json::String(text.clone()),
            FoundMember::Word(word) => self
                .words
                .get(word)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Json::from(*word)),
        }
    }
}

/// The runtime lists of one evaluation: the shared members of each list (by the list's
/// index in the ruleset, which is the id the compiler gives it), the interner that
/// names this evaluation's string ids, and the members found so far.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    members: Vec<Option<Arc<ListMembers>>>,
    interner: Arc<Interner>,
    /// (list, member) pairs found, each once, in the order first found.
    found: RefCell<Vec<(usize, FoundMember)>>,
}

impl Lists {
    /// `lists` pairs a list's index in the ruleset with its members; lists left out
    /// are empty.
    pub fn new(lists: &[(usize, Arc<ListMembers>)], interner: Arc<Interner>) -> Lists {
        let mut members: Vec<Option<Arc<ListMembers>>> = Vec::new();
        for (index, list) in lists {
            if members.len() <= *index {
                members.resize(index + 1, None);
            }
            if let Some(slot) = members.get_mut(*index) {
                *slot = Some(list.clone());
            }
        }
        Lists {
            members,
            interner,
            found: RefCell::new(Vec::new()),
        }
    }

    /// The interner the lists resolve string ids with (the evaluation's).
    pub fn interner(&self) -> &Arc<Interner> {
        &self.interner
    }

    /// Every (list index, member) a membership test found, each once.
    pub fn found(&self) -> Vec<(usize, FoundMember)> {
        self.found.borrow().clone()
    }
}

impl HostLists for Lists {
    fn contains(&self, list: u32, value: i64) -> bool {
        let index = list as usize;
        let Some(Some(members)) = self.members.get(index) else {
            return false;
        };
        let Some(member) = members.find(value, &self.interner) else {
            return false;
        };
        let mut found = self.found.borrow_mut();
        if !found.iter().any(|(l, m)| *l == index && *m == member) {
            found.push((index, member));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn string_members_are_found_through_the_evaluations_interner_and_recorded_once() {
        let mut interner = Interner::new(&["vip".to_string()]);
        let (d1, d2) = (interner.intern("d-1"), interner.intern("d-2"));
        let blocked =
            ListMembers::from_values(&[Value::String("d-2".into()), Value::String("vip".into())]);
        assert_eq!(blocked, ListMembers::from_strings(["vip", "d-2", "vip"]));
        let blocked = Arc::new(blocked);
        let lists = Lists::new(&[(1, blocked)], Arc::new(interner));
        assert!(!lists.contains(1, d1));
        assert!(lists.contains(1, d2));
        assert!(lists.contains(1, d2));
        assert!(lists.contains(1, 0), "a literal of the module's table");
        assert!(!lists.contains(0, d2), "list 0 was not given: empty");
        assert!(!lists.contains(7, d2), "an unknown list is empty");
        assert!(!lists.contains(1, 99), "an id no string has");
        assert_eq!(
            lists.found(),
            vec![
                (1, FoundMember::Text("d-2".into())),
                (1, FoundMember::Text("vip".into()))
            ]
        );
    }

    #[test]
    fn word_members_keep_the_json_they_were_read_from() {
        let mut members = ListMembers::default();
        members.insert(&Value::Money(1250), Some(&Json::from(12.5)));
        members.insert(&Value::Int(7), None);
        let members = Arc::new(members);
        let lists = Lists::new(&[(0, members.clone())], Arc::new(Interner::default()));
        assert!(lists.contains(0, 1250));
        assert!(lists.contains(0, 7));
        assert!(!lists.contains(0, 8));
        let found = lists.found();
        let json: Vec<Json> = found.iter().map(|(_, m)| members.json_of(m)).collect();
        assert_eq!(json, vec![Json::from(12.5), Json::from(7)]);
        assert_eq!(members.len(), 2);
    }
}
