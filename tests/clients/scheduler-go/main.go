// The scheduler's code from the service's documentation, as written there: its connection example
// and its use cases (a dashboard, comparing workflows, cost estimation, usage monitoring), built
// against Go stubs generated from proto/analytics/analytics.proto by a plain protoc call (no
// import-path flags: the proto's go_package puts them where the scheduler imports them from).
// Only the address and ids are flags here; the example hard-codes localhost:50055, user-123 and
// workflow-456. tests/test_grpc_scheduler_go.py runs it and reads what it prints.
//
//	go run . -addr localhost:50055 -user user-123 -workflow workflow-456
package main

import (
	"context"
	"flag"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/hitesh22rana/chronoverse/pkg/proto/go/analytics"
)

func main() {
	addr := flag.String("addr", "localhost:50055", "the AnalyticsService")
	userID := flag.String("user", "user-123", "a user")
	workflowID := flag.String("workflow", "workflow-456", "one of the user's workflows")
	flag.Parse()

	conn, err := grpc.Dial(
		*addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		log.Fatalf("Failed to connect: %v", err)
	}
	defer conn.Close()

	client := pb.NewAnalyticsServiceClient(conn)
	ctx := context.Background()

	// Get user analytics
	userResp, err := client.GetUserAnalytics(ctx, &pb.GetUserAnalyticsRequest{
		UserId: *userID,
	})
	if err != nil {
		log.Fatalf("GetUserAnalytics failed: %v", err)
	}
	log.Printf("User has %d workflows and %d jobs",
		userResp.TotalWorkflows, userResp.TotalJobs)

	// Get workflow analytics
	wfResp, err := client.GetWorkflowAnalytics(ctx, &pb.GetWorkflowAnalyticsRequest{
		UserId:     *userID,
		WorkflowId: *workflowID,
	})
	if err != nil {
		log.Fatalf("GetWorkflowAnalytics failed: %v", err)
	}
	log.Printf("Workflow %s has %d jobs", wfResp.WorkflowId, wfResp.TotalJobs)

	getUserDashboard(client, *userID)
	compareWorkflows(client, *userID, []string{*workflowID})
	estimateCosts(client, *userID)
	monitorResourceUsage(client, *userID)
}
