//! The PDF outline (bookmarks panel) built from the bookmarked lines.

use crate::geometry::Geometry;
use crate::printer::Mark;
use crate::winansi::text_string;
use lopdf::{dictionary, Document, Object, ObjectId, StringFormat};

/// Adds a flat outline with one entry per mark, each jumping to its line; returns the
/// /Outlines dictionary's id, or `None` when there are no marks.
pub fn add(
    doc: &mut Document,
    marks: &[Mark],
    page_ids: &[ObjectId],
    g: &Geometry,
) -> Option<ObjectId> {
    let marks: Vec<(&Mark, ObjectId)> = marks
        .iter()
        .filter_map(|m| page_ids.get(m.page).map(|&id| (m, id)))
        .collect();
    if marks.is_empty() {
        return None;
    }
    let root = doc.new_object_id();
    let ids: Vec<ObjectId> = marks.iter().map(|_| doc.new_object_id()).collect();
    for (i, (mark, page)) in marks.iter().enumerate() {
        let mut item = dictionary! {
            "Title" => Object::String(text_string(&mark.title), StringFormat::Literal),
            "Parent" => root,
            "Dest" => vec![
                Object::Reference(*page),
                "XYZ".into(),
                Object::Null,
                Object::Real(g.slot_top(mark.row) as f32),
                Object::Null,
            ],
        };
        if i > 0 {
            item.set("Prev", ids[i - 1]);
        }
        if let Some(next) = ids.get(i + 1) {
            item.set("Next", *next);
        }
        doc.objects.insert(ids[i], Object::Dictionary(item));
    }
    let (first, last) = (ids[0], ids[ids.len() - 1]);
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    doc.objects.insert(
        root,
        Object::Dictionary(dictionary! {
            "Type" => "Outlines",
            "First" => first,
            "Last" => last,
            "Count" => count,
        }),
    );
    Some(root)
}
