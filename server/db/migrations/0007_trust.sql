PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_release_keys` (
	`keyid` text PRIMARY KEY NOT NULL,
	`public_key` text NOT NULL,
	`private_key_pem` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`retired_at` text
);
--> statement-breakpoint
INSERT INTO `__new_release_keys`("keyid", "public_key", "private_key_pem", "created_at", "retired_at") SELECT "keyid", "public_key", "private_key_pem", "created_at", "retired_at" FROM `release_keys`;--> statement-breakpoint
DROP TABLE `release_keys`;--> statement-breakpoint
ALTER TABLE `__new_release_keys` RENAME TO `release_keys`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
ALTER TABLE `device_desired` ADD `previous_bundle_id` text;--> statement-breakpoint
ALTER TABLE `device_desired` ADD `mismatch_since` text;--> statement-breakpoint
ALTER TABLE `device_desired` ADD `republished_at` text;