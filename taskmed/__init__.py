"""TaskMed Conversations: the live conversation inbox of TaskMed's clinics."""
