//! IncidentService through the real server against a real Redis.

use crate::common;

use common::{IncidentBuilder, RedisServer, TestServer, config, violations};
use tonic::Code;
use verdict::proto::{
    CreateIncidentRequest, GetIncidentRequest, IncidentStatus, ListIncidentsRequest, Severity,
    UpdateIncidentStatusRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_and_retry_with_a_request_id() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let req = CreateIncidentRequest {
        incident: Some(
            IncidentBuilder::alerting("Checkout pods crashing", "PodCrashLooping", "checkout")
                .proto(),
        ),
        request_id: "alert-42".into(),
    };
    let a = s
        .incidents
        .create_incident(req.clone())
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(a.id.starts_with("INC-") && a.id.len() == 16, "{}", a.id);
    assert_eq!(a.status, IncidentStatus::Open as i32);
    assert_eq!(a.version, 1);
    let b = s
        .incidents
        .create_incident(req)
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(a, b, "a retry returns the first incident");
    let got = s
        .incidents
        .get_incident(GetIncidentRequest { id: a.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(got, a);

    let mut explicit = IncidentBuilder::alerting("Mine", "Disk", "web").proto();
    explicit.id = "shop:web-1".into();
    let req = CreateIncidentRequest {
        incident: Some(explicit),
        request_id: String::new(),
    };
    s.incidents.create_incident(req.clone()).await.unwrap();
    let e = s.incidents.create_incident(req).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_set_and_clear_resolved_at() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let id = common::create_incident(&mut s, "PodCrashLooping").await;
    let upd = |status: IncidentStatus| UpdateIncidentStatusRequest {
        request_id: String::new(),
        id: id.clone(),
        status: status as i32,
        actor: "alice".into(),
        note: "n".into(),
    };
    let r = s
        .incidents
        .update_incident_status(upd(IncidentStatus::Resolved))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(r.status, IncidentStatus::Resolved as i32);
    assert!(r.resolved_at.is_some());
    assert_eq!((r.version, r.status_actor.as_str()), (2, "alice"));
    let again = s
        .incidents
        .update_incident_status(upd(IncidentStatus::Resolved))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(again, r, "setting the same status changes nothing");
    let reopened = s
        .incidents
        .update_incident_status(upd(IncidentStatus::Investigating))
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert!(reopened.resolved_at.is_none());
    let e = s
        .incidents
        .update_incident_status(UpdateIncidentStatusRequest {
            id: "INC-NOPE".into(),
            ..upd(IncidentStatus::Closed)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_pages_through_everything_once() {
    let redis = RedisServer::start();
    let mut s = TestServer::start(config(Some(&redis))).await;
    let mut p1 = vec![];
    for i in 0..23 {
        let mut inc = IncidentBuilder::alerting(
            &format!("incident {i}"),
            "PodCrashLooping",
            if i % 2 == 0 { "checkout" } else { "payments" },
        )
        .proto();
        inc.severity = if i % 3 == 0 {
            Severity::P1
        } else {
            Severity::P3
        } as i32;
        let created = s
            .incidents
            .create_incident(CreateIncidentRequest {
                incident: Some(inc),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .incident
            .unwrap();
        if i % 3 == 0 {
            p1.push(created.id);
        }
    }
    let list = |req: ListIncidentsRequest| {
        let mut c = s.incidents.clone();
        async move { c.list_incidents(req).await.map(|r| r.into_inner()) }
    };
    // Unfiltered, in pages of 5.
    let mut seen = vec![];
    let mut token = String::new();
    loop {
        let page = list(ListIncidentsRequest {
            page_size: 5,
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(page.incidents.len() <= 5);
        seen.extend(page.incidents);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 23);
    assert!(
        seen.windows(2)
            .all(|w| w[0].created_at.as_ref().unwrap().seconds
                >= w[1].created_at.as_ref().unwrap().seconds)
    );
    // Filtered by severity and service.
    let mut got = vec![];
    let mut token = String::new();
    loop {
        let page = list(ListIncidentsRequest {
            severity: Severity::P1 as i32,
            page_size: 3,
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        got.extend(page.incidents.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    got.sort();
    p1.sort();
    assert_eq!(got, p1);
    let payments = list(ListIncidentsRequest {
        service: "payments".into(),
        page_size: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(payments.incidents.len(), 11);
    assert!(payments.next_page_token.is_empty());
    let e = list(ListIncidentsRequest {
        page_token: "garbage".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(violations(&e), vec!["page_token"]);
}
