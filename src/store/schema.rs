// Kept in step by hand with migrations/{sqlite,postgres}: both backends share these types.
diesel::table! {
    directories (id) {
        id -> Text,
        name -> Text,
        tenant -> Text,
        product -> Text,
        provider_type -> Text,
        scim_secret_hash -> Text,
        previous_secret_hash -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        webhook_url -> Nullable<Text>,
        webhook_secret -> Nullable<Text>,
        log_webhook_events -> Bool,
        deactivated -> Bool,
        user_limit -> Nullable<BigInt>,
        organizational_unit_id -> Nullable<Text>,
        last_event_sequence -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        directory_id -> Text,
        user_name -> Text,
        user_name_lower -> Text,
        external_id -> Nullable<Text>,
        email -> Nullable<Text>,
        email_lower -> Nullable<Text>,
        given_name -> Nullable<Text>,
        family_name -> Nullable<Text>,
        display_name -> Nullable<Text>,
        active -> Bool,
        raw -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scim_groups (id) {
        id -> Text,
        directory_id -> Text,
        display_name -> Text,
        display_name_lower -> Text,
        external_id -> Nullable<Text>,
        raw -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    memberships (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        directory_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        directory_id -> Text,
        sequence -> Nullable<BigInt>,
        event_type -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(memberships -> scim_groups (group_id));
diesel::allow_tables_to_appear_in_same_query!(
    directories,
    users,
    scim_groups,
    memberships,
    events,
    user_emails
);

diesel::table! {
    user_emails (user_id, position) {
        user_id -> Text,
        position -> BigInt,
        directory_id -> Text,
        value_lower -> Nullable<Text>,
        email_type -> Nullable<Text>,
        is_primary -> Nullable<Bool>,
    }
}

diesel::joinable!(user_emails -> users (user_id));
