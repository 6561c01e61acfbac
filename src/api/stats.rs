//! `verdict.v1.StatsService`: declared, answered UNIMPLEMENTED until the
//! statistics issue lands.

use super::status::unimplemented;
use crate::proto as pb;
use crate::proto::stats_service_server::StatsService;
use tonic::{Request, Response, Status};

pub struct StatsApi;

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_incident_summary(
        &self,
        _req: Request<pb::GetIncidentSummaryRequest>,
    ) -> Result<Response<pb::GetIncidentSummaryResponse>, Status> {
        Err(unimplemented("StatsService.GetIncidentSummary"))
    }

    async fn get_resolution_stats(
        &self,
        _req: Request<pb::GetResolutionStatsRequest>,
    ) -> Result<Response<pb::GetResolutionStatsResponse>, Status> {
        Err(unimplemented("StatsService.GetResolutionStats"))
    }

    async fn get_ai_performance(
        &self,
        _req: Request<pb::GetAiPerformanceRequest>,
    ) -> Result<Response<pb::GetAiPerformanceResponse>, Status> {
        Err(unimplemented("StatsService.GetAiPerformance"))
    }

    async fn get_affected_services(
        &self,
        _req: Request<pb::GetAffectedServicesRequest>,
    ) -> Result<Response<pb::GetAffectedServicesResponse>, Status> {
        Err(unimplemented("StatsService.GetAffectedServices"))
    }
}
