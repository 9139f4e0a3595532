//! Where a start runs. A node with room (fewer held jobs than its
//! `--max-jobs`) that is alive, not draining, and offers every label the
//! profile requires, takes it; when the node asked cannot, the start is
//! placed on the live node with the most free slots. Pure: the job service
//! gathers the rooms under one lock (so two placements never count the
//! same slot) and writes the decision.

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub node: String,
    /// `--max-jobs` minus the jobs it holds (placed, running, stopping).
    pub free: i64,
    pub labels: Vec<String>,
    /// Alive, not draining, not leaving: it may take a job.
    pub open: bool,
}

/// Whether `offered` has every label in `required` (`gpu`, `region=eu`).
pub fn has_labels(offered: &[String], required: &[String]) -> bool {
    required.iter().all(|label| offered.contains(label))
}

/// Whether `room` can take a job of a profile requiring `required`.
pub fn fits(room: &Room, required: &[String]) -> bool {
    room.open && room.free > 0 && has_labels(&room.labels, required)
}

/// The room that takes a job: `here` when it fits, else the open node
/// with the most free slots that offers the labels (the lowest id among
/// equals, so that every node decides the same). `None`: every node is
/// full, draining or lacks a label.
pub fn choose<'a>(rooms: &'a [Room], here: &str, required: &[String]) -> Option<&'a Room> {
    if let Some(room) = rooms.iter().find(|r| r.node == here && fits(r, required)) {
        return Some(room);
    }
    rooms
        .iter()
        .filter(|r| fits(r, required))
        .min_by(|a, b| b.free.cmp(&a.free).then_with(|| a.node.cmp(&b.node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(node: &str, free: i64, labels: &[&str]) -> Room {
        Room {
            node: node.to_owned(),
            free,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            open: true,
        }
    }

    #[test]
    fn a_node_with_room_keeps_its_start() {
        let rooms = [room("a", 1, &[]), room("b", 5, &[])];
        assert_eq!(choose(&rooms, "a", &[]).map(|r| &*r.node), Some("a"));
    }

    #[test]
    fn a_full_node_places_on_the_one_with_most_free_slots() {
        let rooms = [room("a", 0, &[]), room("b", 2, &[]), room("c", 4, &[])];
        assert_eq!(choose(&rooms, "a", &[]).map(|r| &*r.node), Some("c"));
        // Equals: the lowest id, whoever decides.
        let rooms = [room("c", 3, &[]), room("a", 0, &[]), room("b", 3, &[])];
        assert_eq!(choose(&rooms, "a", &[]).map(|r| &*r.node), Some("b"));
    }

    #[test]
    fn labels_a_profile_requires_decide_first() {
        let gpu = vec!["gpu".to_owned()];
        let rooms = [room("a", 9, &[]), room("b", 1, &["gpu", "region=eu"])];
        assert_eq!(choose(&rooms, "a", &gpu).map(|r| &*r.node), Some("b"));
        let rooms = [room("a", 9, &[])];
        assert_eq!(choose(&rooms, "a", &gpu), None);
    }

    #[test]
    fn draining_lost_and_full_nodes_take_nothing() {
        let mut draining = room("b", 9, &[]);
        draining.open = false;
        let rooms = [room("a", 0, &[]), draining, room("c", 0, &[])];
        assert_eq!(choose(&rooms, "a", &[]), None);
    }
}
