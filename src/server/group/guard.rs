//! The bearer token check of a proxied route group: the first layer of
//! its stack, so that a request the snapshot's [`Auth`] refuses never
//! reaches the service behind the group.
//!
//! What the group needs (a token, some scopes, or nothing with `auth:
//! none`) was resolved when the snapshot was built; the layer only holds
//! the group's index. A request that passes has the client's own values
//! of the `forward_claims` names dropped and the verified claims set, as
//! headers, on its way to the service; the `Authorization` header goes on
//! as it came.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use futures_util::future::Either;
use http::Request;
use tower::{Layer, Service};

use super::Current;
use crate::auth::Auth;

/// Checks the token of requests under the route group at index `group`
/// (in `routes:`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardLayer {
    group: usize,
}

impl GuardLayer {
    pub(crate) fn new(group: usize) -> GuardLayer {
        GuardLayer { group }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            group: self.group,
        }
    }
}

/// [`GuardLayer`]'s service: refuses, or passes the request on with the
/// claims set.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    group: usize,
}

impl<S> Service<Request<Body>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let Some(Current(snapshot)) = request.extensions().get::<Current>().cloned() else {
            unreachable!("groups are served with their snapshot")
        };
        let admitted = Auth::group(
            snapshot.auth.as_ref(),
            self.group,
            request.method(),
            request.headers(),
        );
        match admitted {
            Ok(admitted) => {
                admitted.apply(request.headers_mut());
                Either::Right(self.inner.call(request))
            }
            // Logged (with its reason) where it was refused, and counted
            // with the group's other answers under the `proxy` face.
            Err(err) => Either::Left(ready(
                Ok(err.into_response(&snapshot.pool, &snapshot.codec)),
            )),
        }
    }
}
