// The scheduler's own way of calling the AnalyticsService: Go stubs generated from
// proto/analytics/analytics.proto (protoc-gen-go, protoc-gen-go-grpc), grpc-go connected as the
// scheduler's client package connects (round robin, gzip), and the calls of the service's
// documentation (a dashboard, comparing workflows, cost and usage checks), the codes of its
// errors read with status.Code. It prints one JSON document with what the server answered;
// tests/test_grpc_service_go_client.py checks it against the events sent.
//
//	go run . -addr localhost:50055 -user user-123 -workflow workflow-456 -other-user user-9
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "workflow-analytics/tests/clients/grpc-go/analyticspb"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// The totals of GetWorkflowAnalytics, or the code of its error.
type workflowReport struct {
	WorkflowID string `json:"workflow_id"`
	Jobs       uint32 `json:"total_jobs"`
	Joblogs    uint64 `json:"total_joblogs"`
	Seconds    uint64 `json:"total_job_execution_duration"`
	Error      string `json:"error,omitempty"`
}

type report struct {
	Health    string            `json:"health"`
	Workflows uint32            `json:"total_workflows"`
	Jobs      uint64            `json:"total_jobs"`
	Joblogs   uint64            `json:"total_joblogs"`
	Seconds   uint64            `json:"total_job_execution_duration"`
	Compared  []workflowReport  `json:"compared"`
	Listed    []string          `json:"listed"`
	Pages     int               `json:"pages"`
	Details   map[string]uint64 `json:"details"`
	// The same details asked from Go's zero time.Time, a client's "no start", to now.
	DetailsSinceZero map[string]uint64 `json:"details_since_zero"`
	Codes            map[string]string `json:"codes"`
	Error            string            `json:"error,omitempty"`
}

func code(err error) string {
	if err == nil {
		return "OK"
	}
	return status.Code(err).String()
}

func run(addr, user, otherUser string, workflows []string) (out report) {
	out.Codes = map[string]string{}
	// As the scheduler's own client package connects: round robin over what the name resolves
	// to (localhost: ::1 and 127.0.0.1), every request gzip-compressed.
	conn, err := grpc.NewClient(
		addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingPolicy":"round_robin"}`),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)),
	)
	if err != nil {
		out.Error = fmt.Sprintf("dial: %v", err)
		return
	}
	defer conn.Close()
	client := pb.NewAnalyticsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "analytics.AnalyticsService"})
	if err != nil {
		out.Error = fmt.Sprintf("health: %v", err)
		return
	}
	out.Health = health.Status.String()

	// Dashboard metrics, cost estimation and usage monitoring all read these four.
	resp, err := client.GetUserAnalytics(ctx, &pb.GetUserAnalyticsRequest{UserId: user})
	if err != nil {
		out.Error = fmt.Sprintf("GetUserAnalytics: %v", err)
		return
	}
	out.Workflows, out.Jobs, out.Joblogs, out.Seconds = resp.TotalWorkflows, resp.TotalJobs, resp.TotalJoblogs, resp.TotalJobExecutionDuration

	// Comparing workflows: an error is logged and the loop goes on, as the documentation's does.
	for _, wfID := range workflows {
		wf, err := client.GetWorkflowAnalytics(ctx, &pb.GetWorkflowAnalyticsRequest{UserId: user, WorkflowId: wfID})
		if err != nil {
			out.Compared = append(out.Compared, workflowReport{WorkflowID: wfID, Error: code(err)})
			continue
		}
		out.Compared = append(out.Compared, workflowReport{wf.WorkflowId, wf.TotalJobs, wf.TotalJoblogs, wf.TotalJobExecutionDuration, ""})
	}

	// Every workflow of the user, two a page, most jobs first.
	token := ""
	for {
		page, err := client.ListWorkflowAnalytics(ctx, &pb.ListWorkflowAnalyticsRequest{
			UserId: user, OrderBy: pb.WorkflowOrder_WORKFLOW_ORDER_JOBS, PageSize: 2, PageToken: token,
		})
		if err != nil {
			out.Error = fmt.Sprintf("ListWorkflowAnalytics: %v", err)
			return
		}
		out.Pages++
		for _, wf := range page.Workflows {
			out.Listed = append(out.Listed, wf.WorkflowId)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}

	details, err := client.GetUserAnalyticsDetails(ctx, &pb.GetUserAnalyticsDetailsRequest{UserId: user})
	if err != nil {
		out.Error = fmt.Sprintf("GetUserAnalyticsDetails: %v", err)
		return
	}
	s := details.Summary
	out.Details = map[string]uint64{
		"total_workflows":              s.TotalWorkflows,
		"total_jobs":                   s.TotalJobs,
		"total_joblogs":                s.TotalJoblogs,
		"total_job_execution_duration": s.TotalJobExecutionDuration,
		"completed":                    s.Outcomes.Completed,
		"failed":                       s.Outcomes.Failed,
		"cancelled":                    s.Outcomes.Cancelled,
	}

	var since time.Time // not set: the zero time, 0001-01-01
	sinceZero, err := client.GetUserAnalyticsDetails(ctx, &pb.GetUserAnalyticsDetailsRequest{
		UserId: user, DateRange: &pb.DateRange{StartDate: since.Format(time.DateOnly), EndDate: time.Now().UTC().Format(time.DateOnly)},
	})
	if err != nil {
		out.Error = fmt.Sprintf("GetUserAnalyticsDetails from the zero time: %v", err)
		return
	}
	out.DetailsSinceZero = map[string]uint64{
		"total_workflows": sinceZero.Summary.TotalWorkflows,
		"total_jobs":      sinceZero.Summary.TotalJobs,
		"total_joblogs":   sinceZero.Summary.TotalJoblogs,
	}

	_, err = client.GetUserAnalytics(ctx, &pb.GetUserAnalyticsRequest{UserId: "no-such-user-anywhere"})
	out.Codes["unknown_user"] = code(err)
	_, err = client.GetUserAnalytics(ctx, &pb.GetUserAnalyticsRequest{})
	out.Codes["empty_user"] = code(err)
	_, err = client.GetUserAnalytics(ctx, &pb.GetUserAnalyticsRequest{UserId: "a/b"})
	out.Codes["malformed_user"] = code(err)
	_, err = client.GetWorkflowAnalytics(ctx, &pb.GetWorkflowAnalyticsRequest{UserId: otherUser, WorkflowId: workflows[0]})
	out.Codes["other_users_workflow"] = code(err)
	_, err = client.GetWorkflowAnalytics(ctx, &pb.GetWorkflowAnalyticsRequest{UserId: user})
	out.Codes["empty_workflow"] = code(err)
	_, err = client.GetAnalyticsTimeSeries(ctx, &pb.GetAnalyticsTimeSeriesRequest{
		UserId: user, DateRange: &pb.DateRange{StartDate: "2026-02-30"},
	})
	out.Codes["impossible_day"] = code(err)
	return
}

func main() {
	addr := flag.String("addr", "localhost:50055", "server address")
	user := flag.String("user", "", "a user with analytics")
	otherUser := flag.String("other-user", "", "another user, who owns none of -workflow")
	var workflows list
	flag.Var(&workflows, "workflow", "a workflow to compare (repeatable)")
	flag.Parse()
	out := run(*addr, *user, *otherUser, workflows)
	encoded, _ := json.Marshal(out)
	fmt.Println(string(encoded))
	if out.Error != "" {
		os.Exit(1)
	}
}
