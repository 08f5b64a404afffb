// The documentation's use cases, which name the stubs' package "analytics".
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/hitesh22rana/chronoverse/pkg/proto/go/analytics"
)

// Dashboard Metrics: user-level statistics on a dashboard.
func getUserDashboard(client analytics.AnalyticsServiceClient, userID string) {
	ctx := context.Background()

	resp, err := client.GetUserAnalytics(ctx, &analytics.GetUserAnalyticsRequest{
		UserId: userID,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Display metrics
	dashboard := map[string]interface{}{
		"workflows":      resp.TotalWorkflows,
		"jobs":           resp.TotalJobs,
		"logs":           resp.TotalJoblogs,
		"execution_time": resp.TotalJobExecutionDuration,
	}

	// Render dashboard...
	fmt.Printf("dashboard: workflows=%d jobs=%d logs=%d execution_time=%d\n",
		dashboard["workflows"], dashboard["jobs"], dashboard["logs"], dashboard["execution_time"])
}

// Compare performance across multiple workflows.
func compareWorkflows(client analytics.AnalyticsServiceClient, userID string, workflowIDs []string) {
	ctx := context.Background()

	for _, wfID := range workflowIDs {
		resp, err := client.GetWorkflowAnalytics(ctx, &analytics.GetWorkflowAnalyticsRequest{
			UserId:     userID,
			WorkflowId: wfID,
		})
		if err != nil {
			log.Printf("Failed to get analytics for %s: %v", wfID, err)
			continue
		}

		efficiency := float64(0)
		if resp.TotalJobs > 0 {
			efficiency = float64(resp.TotalJobExecutionDuration) / float64(resp.TotalJobs)
		}

		fmt.Printf("%s: %d jobs, %.2fs avg duration\n",
			resp.WorkflowId, resp.TotalJobs, efficiency)
	}
}

// Cost Estimation based on execution time.
func estimateCosts(client analytics.AnalyticsServiceClient, userID string) {
	ctx := context.Background()

	resp, err := client.GetUserAnalytics(ctx, &analytics.GetUserAnalyticsRequest{
		UserId: userID,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Example: $0.0001 per second of execution
	costPerSecond := 0.0001
	totalCost := float64(resp.TotalJobExecutionDuration) * costPerSecond

	fmt.Printf("Total Execution Time: %d seconds\n", resp.TotalJobExecutionDuration)
	fmt.Printf("Estimated Cost: $%.4f\n", totalCost)
}

// Resource Usage Monitoring: alert on resource usage.
func monitorResourceUsage(client analytics.AnalyticsServiceClient, userID string) {
	ctx := context.Background()

	resp, err := client.GetUserAnalytics(ctx, &analytics.GetUserAnalyticsRequest{
		UserId: userID,
	})
	if err != nil {
		log.Fatal(err)
	}

	// Define thresholds
	const (
		maxJobs     = 10000
		maxLogs     = 1000000
		maxDuration = 86400 // 24 hours in seconds
	)

	// Check limits
	if resp.TotalJobs > maxJobs {
		fmt.Printf("WARNING: Job count exceeded: %d > %d\n", resp.TotalJobs, maxJobs)
	}
	if resp.TotalJoblogs > maxLogs {
		fmt.Printf("WARNING: Log count exceeded: %d > %d\n", resp.TotalJoblogs, maxLogs)
	}
	if resp.TotalJobExecutionDuration > maxDuration {
		fmt.Printf("WARNING: Execution time exceeded: %d > %d seconds\n",
			resp.TotalJobExecutionDuration, maxDuration)
	}
}
