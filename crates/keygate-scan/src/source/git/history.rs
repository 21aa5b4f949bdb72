//! The walk of a whole history: the commits reachable from every reference, put in an order
//! where each comes after its parents (the older first where neither is the other's ancestor),
//! and the blobs of their trees, each once, under the path and commit that first held it.
//!
//! A tree already seen is not entered again — most of a commit's tree is its parent's — so
//! the walk reads about as many trees as the history changed, not as many as it holds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::hashtable::{HashMap, HashSet};
use gix::objs::commit::ref_iter::Token;
use gix::objs::tree::EntryKind;
use gix::prelude::FindExt;

use super::{Blob, git_error};
use crate::source::ScanError;

/// The blobs of a history, and the commits they name by index.
#[derive(Debug)]
pub(super) struct Walk {
    pub(super) commits: Vec<ObjectId>,
    pub(super) blobs: Vec<Blob>,
}

pub(super) fn walk(repo: &gix::Repository) -> Result<Walk, ScanError> {
    let tips = Tips::of(repo)?;
    let graph = Graph::load(repo, &tips.commits)?;
    let mut trees = Trees {
        repo,
        seen_trees: HashSet::default(),
        seen_blobs: HashSet::default(),
        blobs: Vec::new(),
        buffer: Vec::new(),
    };
    for at in graph.oldest_first() {
        trees.collect(graph.nodes[at].tree, Some(at))?;
    }
    // A tag may name a tree or a blob: what it holds is shown without a commit.
    for (name, id, kind) in tips.others {
        match kind {
            gix::objs::Kind::Tree => trees.collect(id, None)?,
            gix::objs::Kind::Blob => trees.add_blob(id, name, None),
            gix::objs::Kind::Commit | gix::objs::Kind::Tag => {}
        }
    }
    Ok(Walk {
        commits: graph.nodes.into_iter().map(|node| node.id).collect(),
        blobs: trees.blobs,
    })
}

/// Where the walk starts: what every reference and `HEAD` point to, tags peeled.
#[derive(Debug, Default)]
struct Tips {
    commits: Vec<ObjectId>,
    /// References to trees and blobs, with their names.
    others: Vec<(String, ObjectId, gix::objs::Kind)>,
}

impl Tips {
    fn of(repo: &gix::Repository) -> Result<Self, ScanError> {
        let mut tips = Self::default();
        let references = repo.references().map_err(git_error("listing references"))?;
        for reference in references.all().map_err(git_error("listing references"))? {
            let mut reference = reference.map_err(git_error("reading a reference"))?;
            let name = reference.name().as_bstr().to_str_lossy().into_owned();
            let id = reference
                .peel_to_id()
                .map_err(|err| reference_error(&name, "resolving", &err))?;
            tips.add(repo, name, id.detach())?;
        }
        // A detached `HEAD` is on no branch; an unborn one points nowhere yet.
        let head = repo.head().map_err(git_error("reading HEAD"))?;
        if let Some(id) = head
            .try_into_peeled_id()
            .map_err(git_error("resolving HEAD"))?
        {
            tips.add(repo, "HEAD".to_owned(), id.detach())?;
        }
        Ok(tips)
    }

    fn add(&mut self, repo: &gix::Repository, name: String, id: ObjectId) -> Result<(), ScanError> {
        let kind = repo
            .find_header(id)
            .map_err(|err| reference_error(&name, "reading what it points to", &err))?
            .kind();
        match kind {
            gix::objs::Kind::Commit => self.commits.push(id),
            _ => self.others.push((name, id, kind)),
        }
        Ok(())
    }
}

fn reference_error(name: &str, doing: &str, err: &gix::Error) -> ScanError {
    ScanError::Git(format!("{name}: {doing}: {}", super::causes(err)))
}

/// A commit, as much of it as the walk needs.
#[derive(Debug)]
struct Node {
    id: ObjectId,
    tree: ObjectId,
    /// Committer time, in seconds: orders commits neither of which is the other's ancestor.
    time: i64,
    /// Indices into the graph's nodes.
    parents: Vec<usize>,
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
}

impl Graph {
    /// Every commit reachable from `tips`, each once.
    fn load(repo: &gix::Repository, tips: &[ObjectId]) -> Result<Self, ScanError> {
        // In a shallow clone the boundary commits' parents are absent: they count as roots.
        let shallow = repo
            .shallow_commits()
            .map_err(git_error("reading the shallow boundary"))?;
        let mut graph = Self::default();
        let mut known: HashMap<ObjectId, usize> = HashMap::default();
        let mut pending = Vec::new();
        for tip in tips {
            graph.index_of(*tip, &mut known, &mut pending);
        }
        let mut buffer = Vec::new();
        while let Some(at) = pending.pop() {
            let id = graph.nodes[at].id;
            let is_boundary = shallow
                .as_ref()
                .is_some_and(|boundary| boundary.binary_search(&id).is_ok());
            let commit = repo
                .objects
                .find_commit_iter(&id, &mut buffer)
                .map_err(|err| {
                    ScanError::Git(format!("reading commit {id}: {}", super::causes(&err)))
                })?;
            for token in commit {
                let token = token.map_err(|err| {
                    ScanError::Git(format!("decoding commit {id}: {}", super::causes(&err)))
                })?;
                match token {
                    Token::Tree { id } => graph.nodes[at].tree = id,
                    Token::Parent { id } if !is_boundary => {
                        let parent = graph.index_of(id, &mut known, &mut pending);
                        if !graph.nodes[at].parents.contains(&parent) {
                            graph.nodes[at].parents.push(parent);
                        }
                    }
                    Token::Committer { signature } => {
                        // A malformed date only orders the commit first; it loses nothing.
                        graph.nodes[at].time = signature.time().map_or(0, |time| time.seconds);
                        break;
                    }
                    _ => {}
                }
            }
        }
        Ok(graph)
    }

    /// The index of the commit `id`, added (and queued to be read) when first seen.
    fn index_of(
        &mut self,
        id: ObjectId,
        known: &mut HashMap<ObjectId, usize>,
        pending: &mut Vec<usize>,
    ) -> usize {
        *known.entry(id).or_insert_with(|| {
            self.nodes.push(Node {
                id,
                tree: ObjectId::empty_tree(id.kind()),
                time: 0,
                parents: Vec::new(),
            });
            pending.push(self.nodes.len() - 1);
            self.nodes.len() - 1
        })
    }

    /// Each commit after all its parents; of the commits that are ready, the oldest first.
    fn oldest_first(&self) -> Vec<usize> {
        let mut waiting: Vec<usize> = self.nodes.iter().map(|node| node.parents.len()).collect();
        let mut children = vec![Vec::new(); self.nodes.len()];
        for (child, node) in self.nodes.iter().enumerate() {
            for parent in &node.parents {
                children[*parent].push(child);
            }
        }
        let mut ready: BinaryHeap<Reverse<(i64, usize)>> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.parents.is_empty())
            .map(|(at, node)| Reverse((node.time, at)))
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(Reverse((_, at))) = ready.pop() {
            order.push(at);
            for child in &children[at] {
                waiting[*child] -= 1;
                if waiting[*child] == 0 {
                    ready.push(Reverse((self.nodes[*child].time, *child)));
                }
            }
        }
        order
    }
}

/// The trees and blobs seen so far, and the blobs to scan.
struct Trees<'a> {
    repo: &'a gix::Repository,
    seen_trees: HashSet<ObjectId>,
    seen_blobs: HashSet<ObjectId>,
    blobs: Vec<Blob>,
    buffer: Vec<u8>,
}

impl Trees<'_> {
    /// Adds the blobs under `root` not seen before, shown under `commit`.
    fn collect(&mut self, root: ObjectId, commit: Option<usize>) -> Result<(), ScanError> {
        if root.is_empty_tree() || !self.seen_trees.insert(root) {
            return Ok(());
        }
        let mut stack = vec![(root, String::new())];
        while let Some((tree, prefix)) = stack.pop() {
            let entries = self
                .repo
                .objects
                .find_tree_iter(&tree, &mut self.buffer)
                .map_err(|err| tree_error(tree, &prefix, &err))?;
            for entry in entries {
                let entry = entry.map_err(|err| tree_error(tree, &prefix, &err))?;
                let kind = entry.mode.kind();
                // Symbolic links hold a path, and submodules another repository's commit.
                if !matches!(
                    kind,
                    EntryKind::Tree | EntryKind::Blob | EntryKind::BlobExecutable
                ) {
                    continue;
                }
                let id = entry.oid.to_owned();
                let seen = if kind == EntryKind::Tree {
                    &self.seen_trees
                } else {
                    &self.seen_blobs
                };
                if seen.contains(&id) {
                    continue;
                }
                let name = entry.filename.to_str_lossy();
                let path = if prefix.is_empty() {
                    name.into_owned()
                } else {
                    format!("{prefix}/{name}")
                };
                if kind == EntryKind::Tree {
                    self.seen_trees.insert(id);
                    stack.push((id, path));
                } else {
                    self.seen_blobs.insert(id);
                    self.blobs.push(Blob { id, path, commit });
                }
            }
        }
        Ok(())
    }

    fn add_blob(&mut self, id: ObjectId, path: String, commit: Option<usize>) {
        if self.seen_blobs.insert(id) {
            self.blobs.push(Blob { id, path, commit });
        }
    }
}

fn tree_error(tree: ObjectId, prefix: &str, err: &gix::Error) -> ScanError {
    let at = if prefix.is_empty() { "/" } else { prefix };
    ScanError::Git(format!(
        "reading tree {tree} ({at}): {}",
        super::causes(err)
    ))
}
