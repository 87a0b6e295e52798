DROP INDEX events_unsequenced;
