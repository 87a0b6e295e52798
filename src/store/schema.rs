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

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        directory_id -> Nullable<Text>,
        url -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        event_types -> Nullable<Text>,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        batch_size -> Nullable<BigInt>,
        is_primary -> Bool,
        retired -> Bool,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        fanout_version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    deliveries (position) {
        position -> BigInt,
        endpoint_id -> Text,
        event_id -> Text,
        directory_id -> Text,
        sequence -> BigInt,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        last_status -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        directory_id -> Text,
        attempt -> BigInt,
        status_code -> Nullable<BigInt>,
        duration_ms -> BigInt,
        error -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
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
    user_emails,
    webhook_endpoints,
    deliveries,
    delivery_attempts
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

diesel::table! {
    applications (id) {
        id -> Text,
        client_id -> Text,
        client_secret -> Text,
        client_secret_digest -> Text,
        name -> Text,
        redirect_uris -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    service_accounts (id) {
        id -> Text,
        application_id -> Text,
        provider -> Text,
        domain -> Nullable<Text>,
        tenant_id -> Nullable<Text>,
        admin_email -> Nullable<Text>,
        scope -> Text,
        delegated_scope -> Text,
        organizational_unit_id -> Nullable<Text>,
        state -> Text,
        provider_token -> Nullable<Text>,
        provider_token_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        capability -> Text,
        link_position -> Nullable<BigInt>,
        provider_refresh_token -> Nullable<Text>,
        external_account -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_tokens (digest) {
        digest -> Text,
        kind -> Text,
        application_id -> Text,
        subject -> Text,
        family -> Text,
        scope -> Text,
        redirect_uri -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        application_id -> Text,
        email -> Text,
        service_account_id -> Text,
        provider -> Text,
        profile_id -> Text,
        profile_name -> Text,
        provider_user_id -> Nullable<Text>,
        scope -> Text,
        state -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    authorization_jobs (id) {
        id -> Text,
        application_id -> Text,
        service_account_id -> Text,
        email -> Text,
        callback_url -> Text,
        scope -> Text,
        state -> Nullable<Text>,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        callback_body -> Nullable<Text>,
        account_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    consent_flows (id) {
        id -> Text,
        csrf_digest -> Text,
        application_id -> Text,
        params -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        failures -> BigInt,
    }
}

diesel::table! {
    organizational_units (id) {
        id -> Text,
        application_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    conferencing_profiles (id) {
        id -> Text,
        account_id -> Text,
        service_account_id -> Text,
        provider -> Text,
        profile_name -> Text,
        provider_user_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    provisioning_cursors (directory_id) {
        directory_id -> Text,
        organizational_unit_id -> Text,
        last_sequence -> BigInt,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        attempts -> BigInt,
        last_error -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    directory_accounts (directory_id, user_id) {
        directory_id -> Text,
        user_id -> Text,
        account_id -> Text,
        email -> Text,
    }
}

diesel::table! {
    provisioning_issues (directory_id, user_id) {
        directory_id -> Text,
        user_id -> Text,
        email -> Nullable<Text>,
        reason -> Text,
        at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    organizational_units,
    provisioning_issues,
    conferencing_profiles,
    provisioning_cursors,
    directory_accounts,
    applications,
    service_accounts,
    oauth_tokens,
    accounts,
    authorization_jobs
);

diesel::table! {
    setup_links (id) {
        id -> Text,
        digest -> Text,
        tenant -> Nullable<Text>,
        product -> Nullable<Text>,
        organizational_unit_id -> Nullable<Text>,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    google_directories (directory_id) {
        directory_id -> Text,
        domain -> Text,
        admin_email -> Text,
        state -> Text,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        user_count -> Nullable<BigInt>,
        group_count -> Nullable<BigInt>,
        error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    dashboard_sessions (token_digest) {
        token_digest -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}
