DROP INDEX `stats_rollups_bucket`;--> statement-breakpoint
CREATE INDEX `stats_rollups_scope_bucket` ON `stats_rollups` (`scope`,`granularity`,`bucket_start`);