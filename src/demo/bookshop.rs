//! The demo bookshop: an in-memory implementation of
//! `protogate.demo.v1.Bookshop`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::{Code, Request, Response, Status};

use super::pb::google::rpc;
use super::pb::{self, Book, Genre, Shelf};

/// The bookshop service: shelves and books kept in memory.
#[derive(Debug, Clone, Default)]
pub struct Bookshop {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    shelves: Vec<Shelf>,
    /// Books by resource name.
    books: BTreeMap<String, Book>,
}

const CREATED: prost_types::Timestamp = prost_types::Timestamp {
    seconds: 1_735_689_600,
    nanos: 0,
};

impl Bookshop {
    /// A bookshop with two shelves and a few books.
    pub fn with_sample_books() -> Bookshop {
        let mut state = State::default();
        for (id, theme) in [
            ("fiction", "Novels, plays and poems"),
            ("science", "Popular science"),
        ] {
            state.shelves.push(Shelf {
                name: format!("shelves/{id}"),
                theme: theme.to_owned(),
            });
        }
        let books = [
            (
                "fiction",
                "dune",
                "Dune",
                "Frank Herbert",
                412,
                Genre::Fiction,
                9_780_441_013_593,
            ),
            (
                "fiction",
                "emma",
                "Emma",
                "Jane Austen",
                474,
                Genre::Fiction,
                9_780_141_439_587,
            ),
            (
                "fiction",
                "odyssey",
                "The Odyssey",
                "Homer",
                541,
                Genre::Poetry,
                9_780_140_268_867,
            ),
            (
                "science",
                "cosmos",
                "Cosmos",
                "Carl Sagan",
                365,
                Genre::Science,
                9_780_345_539_434,
            ),
            (
                "science",
                "origin",
                "On the Origin of Species",
                "Charles Darwin",
                502,
                Genre::Science,
                9_780_451_529_060,
            ),
        ];
        for (shelf, id, title, author, pages, genre, sku) in books {
            let name = format!("shelves/{shelf}/books/{id}");
            state.books.insert(
                name.clone(),
                Book {
                    name,
                    title: title.to_owned(),
                    author: author.to_owned(),
                    pages,
                    genre: genre as i32,
                    archived: false,
                    create_time: Some(CREATED),
                    sku,
                },
            );
        }
        Bookshop {
            state: Arc::new(Mutex::new(state)),
        }
    }
}

/// A status with one `google.rpc` detail attached.
fn rich_status(code: Code, message: &str, type_name: &str, detail: Vec<u8>) -> Status {
    let status = rpc::Status {
        code: code as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: detail,
        }],
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}

fn not_found(kind: &str, name: &str) -> Status {
    let info = rpc::ResourceInfo {
        resource_type: kind.to_owned(),
        resource_name: name.to_owned(),
        owner: String::new(),
        description: format!("no {kind} is named {name}"),
    };
    rich_status(
        Code::NotFound,
        &format!("{kind} `{name}` not found"),
        "google.rpc.ResourceInfo",
        info.encode_to_vec(),
    )
}

fn bad_request(violations: Vec<(&str, &str)>) -> Status {
    let detail = rpc::BadRequest {
        field_violations: violations
            .iter()
            .map(|(field, description)| rpc::bad_request::FieldViolation {
                field: (*field).to_owned(),
                description: (*description).to_owned(),
                ..Default::default()
            })
            .collect(),
    };
    let message = format!("request has {} invalid field(s)", violations.len());
    rich_status(
        Code::InvalidArgument,
        &message,
        "google.rpc.BadRequest",
        detail.encode_to_vec(),
    )
}

fn shelf_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("shelves/")?;
    let (shelf, _) = rest.split_once("/books/")?;
    Some(shelf)
}

impl State {
    fn has_shelf(&self, parent: &str) -> bool {
        self.shelves.iter().any(|s| s.name == parent)
    }
}

#[tonic::async_trait]
impl pb::bookshop_server::Bookshop for Bookshop {
    async fn list_shelves(
        &self,
        _: Request<pb::ListShelvesRequest>,
    ) -> Result<Response<pb::ListShelvesResponse>, Status> {
        let shelves = self.state.lock().shelves.clone();
        Ok(Response::new(pb::ListShelvesResponse { shelves }))
    }

    async fn list_books(
        &self,
        request: Request<pb::ListBooksRequest>,
    ) -> Result<Response<pb::ListBooksResponse>, Status> {
        let request = request.into_inner();
        let state = self.state.lock();
        if !state.has_shelf(&request.parent) {
            return Err(not_found("shelf", &request.parent));
        }
        if request.page_size < 0 {
            return Err(bad_request(vec![("page_size", "must not be negative")]));
        }
        let page_size = match request.page_size {
            0 => 10,
            n => n.min(100) as usize,
        };
        let start = match request.page_token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                bad_request(vec![("page_token", "not a token from a previous page")])
            })?,
        };
        let prefix = format!("{}/books/", request.parent);
        let matching: Vec<&Book> = state
            .books
            .values()
            .filter(|b| b.name.starts_with(&prefix))
            .filter(|b| request.genre == 0 || b.genre == request.genre)
            .collect();
        let books: Vec<Book> = matching
            .iter()
            .skip(start)
            .take(page_size)
            .map(|b| (*b).clone())
            .collect();
        let next = start + books.len();
        Ok(Response::new(pb::ListBooksResponse {
            books,
            next_page_token: if next < matching.len() {
                next.to_string()
            } else {
                String::new()
            },
            total_size: matching.len() as i32,
        }))
    }

    async fn get_book(
        &self,
        request: Request<pb::GetBookRequest>,
    ) -> Result<Response<Book>, Status> {
        let name = request.into_inner().name;
        let state = self.state.lock();
        let book = state
            .books
            .get(&name)
            .cloned()
            .ok_or_else(|| not_found("book", &name))?;
        Ok(Response::new(book))
    }

    async fn create_book(
        &self,
        request: Request<pb::CreateBookRequest>,
    ) -> Result<Response<Book>, Status> {
        let request = request.into_inner();
        let mut book = request.book.unwrap_or_default();
        let mut violations = Vec::new();
        if book.title.trim().is_empty() {
            violations.push(("book.title", "a book needs a title"));
        }
        if book.pages < 0 {
            violations.push(("book.pages", "must not be negative"));
        }
        if !violations.is_empty() {
            return Err(bad_request(violations));
        }
        let mut state = self.state.lock();
        if !state.has_shelf(&request.parent) {
            return Err(not_found("shelf", &request.parent));
        }
        let id = if request.book_id.is_empty() {
            slug(&book.title)
        } else if request
            .book_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            request.book_id
        } else {
            return Err(bad_request(vec![(
                "book_id",
                "use lowercase letters, digits and `-` only",
            )]));
        };
        book.name = format!("{}/books/{id}", request.parent);
        if state.books.contains_key(&book.name) {
            return Err(Status::already_exists(format!(
                "book `{}` already exists",
                book.name
            )));
        }
        book.create_time = Some(CREATED);
        state.books.insert(book.name.clone(), book.clone());
        Ok(Response::new(book))
    }

    async fn update_book(
        &self,
        request: Request<pb::UpdateBookRequest>,
    ) -> Result<Response<Book>, Status> {
        let request = request.into_inner();
        let patch = request.book.unwrap_or_default();
        let mut paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            // No mask: every field the patch sets.
            paths = [
                (!patch.title.is_empty(), "title"),
                (!patch.author.is_empty(), "author"),
                (patch.pages != 0, "pages"),
                (patch.genre != 0, "genre"),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, p)| p.to_owned())
            .collect();
        }
        let mut state = self.state.lock();
        let book = state
            .books
            .get_mut(&patch.name)
            .ok_or_else(|| not_found("book", &patch.name))?;
        for path in &paths {
            match path.as_str() {
                "title" => book.title = patch.title.clone(),
                "author" => book.author = patch.author.clone(),
                "pages" => book.pages = patch.pages,
                "genre" => book.genre = patch.genre,
                other => {
                    return Err(Status::invalid_argument(format!(
                        "update_mask: `{other}` cannot be updated (title, author, pages, genre can)"
                    )));
                }
            }
        }
        Ok(Response::new(book.clone()))
    }

    async fn delete_book(
        &self,
        request: Request<pb::DeleteBookRequest>,
    ) -> Result<Response<()>, Status> {
        let name = request.into_inner().name;
        let mut state = self.state.lock();
        state
            .books
            .remove(&name)
            .ok_or_else(|| not_found("book", &name))?;
        Ok(Response::new(()))
    }

    async fn archive_book(
        &self,
        request: Request<pb::ArchiveBookRequest>,
    ) -> Result<Response<Book>, Status> {
        let name = request.into_inner().name;
        let mut state = self.state.lock();
        let book = state
            .books
            .get_mut(&name)
            .ok_or_else(|| not_found("book", &name))?;
        if book.archived {
            return Err(Status::failed_precondition(format!(
                "book `{name}` is already archived"
            )));
        }
        book.archived = true;
        Ok(Response::new(book.clone()))
    }

    async fn count_books(
        &self,
        request: Request<pb::CountBooksRequest>,
    ) -> Result<Response<pb::CountBooksResponse>, Status> {
        let parent = request.into_inner().parent;
        let state = self.state.lock();
        let count = state
            .books
            .keys()
            .filter(|name| {
                parent.is_empty()
                    || shelf_of(name).is_some_and(|s| format!("shelves/{s}") == parent)
            })
            .count();
        Ok(Response::new(pb::CountBooksResponse {
            count: count as i64,
        }))
    }

    type WatchShelfStream = ReceiverStream<Result<pb::BookEvent, Status>>;

    async fn watch_shelf(
        &self,
        request: Request<pb::WatchShelfRequest>,
    ) -> Result<Response<Self::WatchShelfStream>, Status> {
        let request = request.into_inner();
        let books: Vec<Book> = {
            let state = self.state.lock();
            if !state.has_shelf(&request.shelf) {
                return Err(not_found("shelf", &request.shelf));
            }
            let prefix = format!("{}/books/", request.shelf);
            state
                .books
                .values()
                .filter(|b| b.name.starts_with(&prefix))
                .cloned()
                .collect()
        };
        let interval = Duration::from_millis(match request.interval_ms {
            ms if ms > 0 => ms.min(10_000) as u64,
            _ => 200,
        });
        let count = match request.max_events {
            n if n > 0 => n as usize,
            _ => books.len(),
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for (i, book) in books.iter().cycle().take(count).enumerate() {
                if i > 0 {
                    tokio::time::sleep(interval).await;
                }
                let event = pb::BookEvent {
                    kind: pb::book_event::Kind::Existing as i32,
                    book: Some(book.clone()),
                };
                // The client went away: stop.
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn import_books(
        &self,
        request: Request<Streaming<pb::ImportBookRequest>>,
    ) -> Result<Response<pb::ImportBooksResponse>, Status> {
        let mut stream = request.into_inner();
        let mut imported = 0;
        while let Some(item) = stream.message().await? {
            let mut book = item.book.unwrap_or_default();
            if book.title.trim().is_empty() {
                return Err(bad_request(vec![("book.title", "a book needs a title")]));
            }
            let mut state = self.state.lock();
            if !state.has_shelf(&item.parent) {
                return Err(not_found("shelf", &item.parent));
            }
            book.name = format!("{}/books/{}", item.parent, slug(&book.title));
            book.create_time = Some(CREATED);
            state.books.insert(book.name.clone(), book);
            imported += 1;
        }
        Ok(Response::new(pb::ImportBooksResponse { imported }))
    }

    type AskLibrarianStream = ReceiverStream<Result<pb::Answer, Status>>;

    async fn ask_librarian(
        &self,
        request: Request<Streaming<pb::Question>>,
    ) -> Result<Response<Self::AskLibrarianStream>, Status> {
        let mut questions = request.into_inner();
        let state = self.state.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut number = 0;
            loop {
                let question = match questions.message().await {
                    Ok(Some(question)) => question,
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                number += 1;
                let text = answer(&state.lock(), &question.text);
                if tx.send(Ok(pb::Answer { text, number })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The librarian's answer: books whose title or author mention a word of
/// the question.
fn answer(state: &State, question: &str) -> String {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    let found: Vec<&str> = state
        .books
        .values()
        .filter(|b| {
            let text = format!("{} {}", b.title, b.author).to_lowercase();
            words.iter().any(|w| text.contains(w.as_str()))
        })
        .map(|b| b.title.as_str())
        .collect();
    if found.is_empty() {
        format!("Nothing on the shelves about \"{question}\", sorry.")
    } else {
        format!("Try {}.", found.join(", "))
    }
}

/// A book id from its title: lowercase words joined by `-`.
fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}
