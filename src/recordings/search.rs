//! Searching what was said: a query as people type it (words, `"a
//! phrase"`, `-without`, `or`, the syntax of web search boxes) turned into
//! each database's full-text query, and the recordings it finds with the
//! passages where its words were said.
//!
//! A recording matches when its title or its whole transcript has the
//! words; its passages are the segments that hold any of them, so a query
//! whose words fall in two neighbouring segments still finds both.

use std::collections::HashMap;

use crate::store::search::FullText;
use crate::store::{self, Segment};

use super::{RecordingError, Recordings};

/// Most passages shown per recording found.
pub const PASSAGES_PER_RECORDING: usize = 3;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 500;

/// One part of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Word(String),
    Phrase(Vec<String>),
    Not(String),
    Or,
}

/// A query, parsed once, written for each database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Every word (or phrase) must be there, none of the excluded ones.
    pub all: FullText,
    /// Any of its words: where in a transcript they were said.
    pub any: FullText,
}

impl SearchQuery {
    /// `None` when the query has no word to look for (empty, punctuation,
    /// or only exclusions).
    pub fn parse(text: &str) -> Option<Self> {
        let terms = terms(text);
        let positive: Vec<&Term> = terms
            .iter()
            .filter(|t| matches!(t, Term::Word(_) | Term::Phrase(_)))
            .collect();
        if positive.is_empty() {
            return None;
        }
        let mut all = String::new();
        let mut pending_or = false;
        for term in &terms {
            match term {
                Term::Or => pending_or = !all.is_empty(),
                Term::Word(w) => {
                    push_joined(&mut all, &quote(w), pending_or);
                    pending_or = false;
                }
                Term::Phrase(words) => {
                    push_joined(&mut all, &quote(&words.join(" ")), pending_or);
                    pending_or = false;
                }
                Term::Not(_) => {}
            }
        }
        let excluded: Vec<String> = terms
            .iter()
            .filter_map(|t| match t {
                Term::Not(w) => Some(format!(" NOT {}", quote(w))),
                _ => None,
            })
            .collect();
        if !excluded.is_empty() {
            all = format!("({all}){}", excluded.concat());
        }
        let words: Vec<&str> = terms
            .iter()
            .flat_map(|t| match t {
                Term::Word(w) => vec![w.as_str()],
                Term::Phrase(words) => words.iter().map(String::as_str).collect(),
                Term::Not(_) | Term::Or => Vec::new(),
            })
            .collect();
        let any = FullText {
            fts5: words
                .iter()
                .map(|w| quote(w))
                .collect::<Vec<_>>()
                .join(" OR "),
            websearch: words.join(" or "),
        };
        Some(Self {
            all: FullText {
                fts5: all,
                websearch: text.to_owned(),
            },
            any,
        })
    }
}

fn push_joined(query: &mut String, term: &str, or: bool) {
    if !query.is_empty() {
        query.push_str(if or { " OR " } else { " " });
    }
    query.push_str(term);
}

/// An FTS5 string: whatever it holds is words to match, never syntax.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The words of `text`: letters and digits, as both databases' tokenizers
/// split them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn terms(text: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 1 {
            // Inside quotes: a phrase.
            match words(part).as_slice() {
                [] => {}
                [word] => terms.push(Term::Word(word.clone())),
                phrase => terms.push(Term::Phrase(phrase.to_vec())),
            }
            continue;
        }
        for token in part.split_whitespace() {
            if token.eq_ignore_ascii_case("or") {
                terms.push(Term::Or);
            } else if let Some(excluded) = token.strip_prefix('-') {
                terms.extend(words(excluded).into_iter().map(Term::Not));
            } else {
                terms.extend(words(token).into_iter().map(Term::Word));
            }
        }
    }
    terms
}

/// A recording a search found, with where its words were said.
#[derive(Debug, Clone)]
pub struct Found {
    pub recording_id: i32,
    /// At most [`PASSAGES_PER_RECORDING`], in the order they were said;
    /// none when only the title matched.
    pub passages: Vec<Segment>,
}

impl Recordings {
    /// One page of the recordings matching `query`, best first, and how
    /// many match in all.
    pub async fn search(
        &self,
        query: &SearchQuery,
        filters: store::search::Filters<'_>,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<Found>, u64), RecordingError> {
        let db = &self.inner.reads;
        let (ids, count) =
            store::search::matching_recordings(db, &query.all, filters, page, page_size).await?;
        let segments = store::search::matching_segments(db, &query.any, &ids).await?;
        let mut by_recording: HashMap<i32, Vec<Segment>> = HashMap::new();
        for segment in segments {
            let passages = by_recording.entry(segment.recording_id).or_default();
            if passages.len() < PASSAGES_PER_RECORDING {
                passages.push(segment);
            }
        }
        let found = ids
            .into_iter()
            .map(|id| {
                let mut passages = by_recording.remove(&id).unwrap_or_default();
                passages.sort_by_key(|s| s.start_ms);
                Found {
                    recording_id: id,
                    passages,
                }
            })
            .collect();
        Ok((found, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_search_syntax_becomes_quoted_fts5() {
        let query = SearchQuery::parse(r#"Hello "the World" -noise or weather's"#).expect("words");
        assert_eq!(
            query.all.fts5,
            r#"("hello" "the world" OR "weather" "s") NOT "noise""#
        );
        assert_eq!(
            query.all.websearch,
            r#"Hello "the World" -noise or weather's"#
        );
        assert_eq!(
            query.any.fts5,
            r#""hello" OR "the" OR "world" OR "weather" OR "s""#
        );
        assert_eq!(query.any.websearch, "hello or the or world or weather or s");
    }

    #[test]
    fn syntax_a_client_types_is_never_syntax_to_the_database() {
        let query = SearchQuery::parse(r#"a"b NEAR( c* ) ^d"#).expect("words");
        assert_eq!(query.all.fts5, r#""a" "b near c d""#);
        for nothing in ["", "  ", "\"\"", "-only -exclusions", "*** ()"] {
            assert_eq!(SearchQuery::parse(nothing), None, "{nothing:?}");
        }
    }
}
