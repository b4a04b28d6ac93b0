//! Splits a YAML stream into documents before parsing, so that a syntax error in one document
//! cannot hide the documents after it.

/// One document of a stream.
pub struct Doc<'a> {
    /// 1-based line of the document's first line in the file.
    pub first_line: usize,
    pub text: &'a str,
}

/// The non-empty documents of `text`, split at `---` lines (and ended by `...` lines).
pub fn documents(text: &str) -> Vec<Doc<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    let mut skipping = false;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_start =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        let is_end = trimmed == "...";
        if is_start || is_end {
            push(&mut docs, &text[start..offset], start_line, skipping);
            start = offset + line.len();
            start_line = i + 2;
            skipping = is_end;
            if is_start {
                skipping = false;
                // `--- key: value` carries content on the marker line itself.
                let rest = trimmed.trim_start_matches("---").trim_start();
                if !rest.is_empty() && !rest.starts_with('#') {
                    start = offset + (line.len() - line.trim_start_matches("---").len());
                    start_line = i + 1;
                }
            }
        }
        offset += line.len();
    }
    push(&mut docs, &text[start..], start_line, skipping);
    docs
}

fn push<'a>(docs: &mut Vec<Doc<'a>>, text: &'a str, first_line: usize, skipping: bool) {
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if meaningful && !skipping {
        docs.push(Doc { first_line, text });
    }
}

#[cfg(test)]
mod tests {
    use super::documents;

    #[test]
    fn splits_on_markers_and_skips_empty_documents() {
        let text = "---\na: 1\n---\n# only a comment\n---\nb: 2\n...\nignored: true\n";
        let docs = documents(text);
        let texts: Vec<_> = docs.iter().map(|d| d.text.trim()).collect();
        assert_eq!(texts, ["a: 1", "b: 2"]);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[1].first_line, 6);
    }

    #[test]
    fn stream_without_markers_is_one_document() {
        let docs = documents("kind: Service\nmetadata:\n  name: x\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 1);
    }

    #[test]
    fn content_on_the_marker_line_is_kept() {
        let docs = documents("--- {a: 1}\n--- {b: 2}\n");
        let texts: Vec<_> = docs.iter().map(|d| d.text.trim()).collect();
        assert_eq!(texts, ["{a: 1}", "{b: 2}"]);
    }
}
